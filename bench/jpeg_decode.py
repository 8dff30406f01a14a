"""JPEG decoding where the model runs (data.jpeg_decode: device) against the workers' PIL decoder, the
training data path alone (no model): real ELPV cells written as JPEG photos (quality 90, upscaled to
--photo-size, as a CUB or Stanford Dogs picture is about 500 x 375), decoded, cropped, flipped and
normalised on --device. Arms alternate over --repeats rounds; the ratio is the median of per-round ratios.

    python bench/jpeg_decode.py                                   # this CPU: decode_jpeg's CPU path
    python bench/jpeg_decode.py --model resnet18 --sizes 128      # ... sharing the CPU with a training step
    python bench/jpeg_decode.py --device cuda --workers 16 --batch 256 --images 8192 --sizes 224   # a GPU
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from rounds import alternate, median_ratio

BASE = ["data.name=elpv", "model.name=tf_efficientnet_lite0", "strategy.name=partial"]


def write_jpegs(count: int, photo_size: int, folder: Path):
    """The first ``count`` ELPV training cells as JPEG files of photo_size x 3/4 photo_size."""
    from fgvc.config import load_config
    from fgvc.data import load_data
    from fgvc.data.images import ImageList

    cells = load_data(load_config(None, ["data.name=elpv"]).data).train
    paths = []
    for index in range(count):
        image = cells.load(index % len(cells)).resize((photo_size, photo_size * 3 // 4))
        paths.append(folder / f"{index:05d}.jpg")
        image.save(paths[-1], quality=90)
    labels = [int(cells.labels[i % len(cells)]) for i in range(count)]
    return ImageList(cells.class_names, labels, paths=paths, name="bench")


def training_step(name: str, device: torch.device):
    """One SGD step of a randomly initialised timm model on a batch (the model's share of a run)."""
    import timm

    model = timm.create_model(name, pretrained=False, num_classes=4).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)

    def step(images: torch.Tensor, labels: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 224])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--photo-size", type=int, default=500)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--model", default=None,
                        help="also train this timm model on each batch (e.g. resnet18): the loader then shares "
                             "the machine with a training step, as in a run")
    args = parser.parse_args()

    from fgvc.config import load_config
    from fgvc.data import load_data
    from fgvc.data.batches import BatchPreparation
    from fgvc.data.device_decode import EncodedBatch
    from fgvc.data.transforms import resolve_normalization
    from fgvc.train.engines.lightning import build_datamodule

    device = torch.device(args.device)
    folder = Path(tempfile.mkdtemp(prefix="fgvc-bench-jpeg-"))
    images = write_jpegs(args.images, args.photo_size, folder)
    for size in args.sizes:
        sets = [f"data.transforms.resize={size}", f"data.transforms.crop={size}", f"train.batch_size={args.batch}",
                f"data.num_workers={args.workers}", "data.transforms.scale=[0.7, 1.0]", "data.transforms.vflip=0.5"]
        cfg = load_config(None, BASE + sets)
        splits = load_data(cfg.data)
        splits.train = images
        prepare = BatchPreparation(resolve_normalization(cfg.data.transforms, cfg.model), cfg.data.transforms)
        step = training_step(args.model, device) if args.model else (lambda batch, labels: None)

        def arm(*extra):
            loader = build_datamodule(load_config(None, BASE + sets + list(extra)), splits).train_dataloader()

            def run():
                for batch, labels in loader:
                    batch = batch.decode(device) if isinstance(batch, EncodedBatch) else batch.to(device)
                    step(prepare.normalize(batch), labels.to(device))
                if device.type == "cuda":
                    torch.cuda.synchronize()
            return run

        arms = {"workers: PIL decode (default)": arm(), "device: decode_jpeg": arm("data.jpeg_decode=device")}
        for run in arms.values():  # warm-up: worker start, page cache, CUDA context and nvJPEG handles
            run()

        def timed(run):
            def images_per_second() -> float:
                started = time.perf_counter()
                run()
                return args.images / (time.perf_counter() - started)
            return images_per_second

        speeds = alternate({name: timed(run) for name, run in arms.items()}, args.repeats)
        ratio = median_ratio(speeds["device: decode_jpeg"], speeds["workers: PIL decode (default)"])
        print(f"\n{size} px crops of {args.photo_size} x {args.photo_size * 3 // 4} JPEGs, {args.images} images, "
              f"batch {args.batch}, {args.workers} workers, device {device}, "
              f"{'training ' + args.model if args.model else 'no model'}, median of {args.repeats}")
        for name, values in speeds.items():
            print(f"  {name:32s} {statistics.median(values):8.1f} images/s")
        print(f"  device / workers: {ratio:.2f}x")


if __name__ == "__main__":
    main()

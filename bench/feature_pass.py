"""The feature cache's backbone pass (what most of a probe's wall time is), in one process: eager
PyTorch in the default layout (NCHW), channels_last, and ONNX Runtime, over the same real ELPV images
through the same DataLoader (decode and resize included). Prints images/s, ratios to NCHW, and how
far the engines' features are from NCHW's. Engines alternate over --repeats rounds; the median counts.

    python bench/feature_pass.py                     # Lite0 (packaged ImageNet weights), 300 px, 256 images
    python bench/feature_pass.py --size 224 --images 512
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=300)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from fgvc.config import load_config
    from fgvc.data import load_data
    from fgvc.data.transforms import build_transform, resolve_normalization
    from fgvc.models.assembly import build_network
    from fgvc.train.feature_cache import extract_features

    cfg = load_config("configs/demo.yaml", [f"data.transforms.resize={args.size}", f"data.transforms.crop={args.size}"])
    model, _ = build_network(cfg, 4, pretrained=True)
    images = load_data(cfg.data).train.subset(list(range(args.images)), "bench")
    transform = build_transform(cfg.data.transforms, resolve_normalization(cfg.data.transforms, cfg.model), train=False)
    engines = {"nchw": dict(engine="torch", channels_last=False), "channels_last": dict(engine="torch", channels_last=True),
               "onnxruntime": dict(engine="onnx")}
    speeds: dict[str, list[float]] = {name: [] for name in engines}
    features: dict[str, torch.Tensor] = {}
    extract_features(model, images.subset(list(range(args.batch)), "warm"), transform, args.batch, engine="onnx")
    for _ in range(args.repeats):
        for name, engine in engines.items():
            started = time.perf_counter()
            features[name] = extract_features(model, images, transform, args.batch, **engine)
            speeds[name].append(len(images) / (time.perf_counter() - started))
    base = statistics.median(speeds["nchw"])
    print(f"feature pass, {cfg.model.name} at {args.size} px, {len(images)} ELPV images, batch {args.batch}, "
          f"{args.threads} threads, median of {args.repeats}")
    for name in engines:
        median = statistics.median(speeds[name])
        diff = float((features[name] - features["nchw"]).abs().max())
        print(f"{name:14s} {median:7.1f} img/s  {median / base:5.2f}x NCHW   max |feature - NCHW| {diff:.1e}")


if __name__ == "__main__":
    main()

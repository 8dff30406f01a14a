"""10 seeds of a linear head: via the feature cache versus through the backbone (``linear`` strategy).

Both on the embedded ELPV data with the embedded EfficientNet-Lite0 weights, same epochs, batch and
resolution, measured in the same process; prints both times and the ratio (target: >= 20x).
The cache starts empty, so the probe's time includes its one backbone pass over the data.

    python bench/feature_probe.py [--seeds 10] [--epochs 4] [--size 96]
"""

from __future__ import annotations

import argparse
import tempfile
import time

from fgvc.config import load_config
from fgvc.train.quiet import quiet_lightning
from fgvc.train.run import train


# the probe on cached features, and the same head fine-tuned through the backbone every epoch
ARMS = {"features": ["train.engine=probe", "probe={head: linear}"],
        "linear": ["train.engine=lightning", "strategy.name=linear", "probe={}"]}


def run_seeds(arm: str, args, cache: str, out: str) -> tuple[float, list[float]]:
    start = time.perf_counter()
    scores = []
    for seed in range(args.seeds):
        cfg = load_config("configs/demo.yaml", [
            *ARMS[arm], f"seed={seed}", f"train.epochs={args.epochs}", "schedule.warmup_epochs=0",
            f"data.transforms.crop={args.size}", f"data.transforms.resize={args.size + args.size // 8}",
            f"data.cache_dir={cache}", f"output.dir={out}", f"output.name={arm}-{seed}",
            "optim.lr=0.003",
        ])
        scores.append(train(cfg, progress=False).test["f1_macro"])
    return time.perf_counter() - start, scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--size", type=int, default=96)
    args = parser.parse_args()
    quiet_lightning()
    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as out:
        probe_time, probe_scores = run_seeds("features", args, cache, out)
        linear_time, linear_scores = run_seeds("linear", args, cache, out)
    print(f"{args.seeds} seeds x {args.epochs} epochs at {args.size}px on ELPV (EfficientNet-Lite0)")
    print(f"feature cache + linear head : {probe_time:8.1f} s  (test macro F1 mean {sum(probe_scores) / len(probe_scores):.3f})")
    print(f"linear strategy (backbone)  : {linear_time:8.1f} s  (test macro F1 mean {sum(linear_scores) / len(linear_scores):.3f})")
    print(f"ratio                       : {linear_time / probe_time:8.1f}x  (target >= 20x)")


if __name__ == "__main__":
    main()

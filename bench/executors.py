"""Wall time of `repeat` over N seeds on the local executor against the Ray executor, in one process.

A tiny config on the real ELPV images (resnet10t from scratch, small images, a few batches per
epoch), so the ratio shows what side-by-side runs buy on this machine. Each arm trains into a fresh
folder (nothing reused); the Ray arm includes starting the local Ray instance, as a user's first
command does. Arms alternate, --repeats times; the median of the ratios is printed.

    python bench/executors.py                         # 4 seeds, 1 CPU per Ray trial
    python bench/executors.py --seeds 8 --cpus-per-trial 2
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from fgvc.config import load_config
from fgvc.experiments.executors import executor_settings, make_executor
from fgvc.experiments.repeat import repeat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--cpus-per-trial", type=float, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batches", type=int, default=20, help="training batches per epoch")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    sets = ["data.name=elpv", "data.label=grade", "model.name=resnet10t", "model.pretrained=false",
            f"data.transforms.resize={args.size}", f"data.transforms.crop={args.size}", "data.num_workers=0",
            f"train.epochs={args.epochs}", "train.batch_size=32", f"train.limit_train_batches={args.batches}",
            "schedule.name=none", "optim.lr=0.01"]
    cfg = load_config(None, sets)
    seeds = list(range(args.seeds))
    ray_executor = make_executor(executor_settings(cfg, "ray", cpus_per_trial=args.cpus_per_trial))
    times: dict[str, list[float]] = {"local": [], "ray": []}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for arm, executor in (("local", None), ("ray", ray_executor)):
                started = time.perf_counter()
                summary = repeat(cfg, seeds, Path(tmp) / f"{arm}-{r}", log=lambda _: None, executor=executor)
                times[arm].append(time.perf_counter() - started)
                results[arm] = summary["metrics"]["test"]["top1"]["mean"]
                print(f"repeat {r + 1}/{args.repeats}  {arm:5s}  {times[arm][-1]:6.1f} s", flush=True)
    ratios = [lo / ra for lo, ra in zip(times["local"], times["ray"])]
    print(f"\n{args.seeds} seeds, {args.epochs} epochs x {args.batches} batches of 32 at {args.size} px, "
          f"ray with {args.cpus_per_trial:g} CPU per trial")
    print(f"local  median {statistics.median(times['local']):6.1f} s   test top1 mean {results['local']:.4f}")
    print(f"ray    median {statistics.median(times['ray']):6.1f} s   test top1 mean {results['ray']:.4f}")
    print(f"speed-up ray / local (median of paired ratios): {statistics.median(ratios):.2f}x")


if __name__ == "__main__":
    main()

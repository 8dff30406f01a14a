"""Time per training step of each arm of the study's freezing question, through fgvc's own training
path (datamodule with real ELPV decoding and augmentation, LightningModule, Trainer), in one process.

The arms are read from ``configs/study_tricks/questions.yaml`` (question ``freezing``), so this times
exactly what the study trained. The arms alternate over --repeats rounds; each arm's ratio to the
reference (partial_2) is the median of per-round ratios. ``features`` has no training steps (one
feature pass, then the head on cached features) and ``gradual`` steps like ``linear`` in its first
epoch and like ``partial_2`` in its last (3 epochs, one stage per epoch), so neither is timed here.

    python bench/freezing.py                       # 128 px, batch 32, as the study
    python bench/freezing.py --set data.transforms.crop=224 --set data.transforms.resize=224
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch

from fgvc.data import load_data
from fgvc.experiments.study import arm_config, load_plan
from fgvc.train.quiet import quiet_lightning
from rounds import alternate, median_ratio
from train_step import fgvc_loop

STUDY = Path("configs/study_tricks")
UNTIMED = ("features", "gradual")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--set", action="append", default=[], help="config override for every arm")
    args = parser.parse_args()
    quiet_lightning()
    torch.manual_seed(0)
    plan = load_plan(STUDY)
    question = next(q for q in plan.questions if q.name == "freezing")
    extra = ["train.deterministic=false", "output.dir=/tmp/fgvc-bench", *args.set]
    cfgs = {name: arm_config(STUDY, plan, question, overrides, extra)
            for name, overrides in question.arms.items() if name not in UNTIMED}
    reference = cfgs[question.reference]
    splits = load_data(reference.data)
    steps_per_epoch = len(splits.train) // reference.train.batch_size
    print(f"{reference.model.name} at {reference.data.transforms.crop} px, batch {reference.train.batch_size}, "
          f"{args.steps} steps after {args.warmup} warm-up, {reference.data.num_workers} workers, "
          f"torch threads {torch.get_num_threads()}, {steps_per_epoch} steps per epoch")
    speeds = alternate({name: (lambda cfg=cfg: fgvc_loop(cfg, splits, args.steps, args.warmup))
                        for name, cfg in cfgs.items()}, args.repeats)
    print(f"{'arm':10s} {'images/s':>9s} {'s/step':>7s} {'s/epoch (train)':>16s}  time vs {question.reference}")
    for name, values in speeds.items():
        rate = statistics.median(values)
        ratio = median_ratio(speeds[question.reference], values)  # time ratio = inverse speed ratio
        print(f"{name:10s} {rate:9.1f} {reference.train.batch_size / rate:7.2f} "
              f"{steps_per_epoch * reference.train.batch_size / rate:16.0f}  {ratio:.2f}  "
              f"(each round: {', '.join(f'{v:.1f}' for v in values)} images/s)")


if __name__ == "__main__":
    main()

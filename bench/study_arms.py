"""Time per training step of each arm of one question of a study plan, through fgvc's own training
path (datamodule with real ELPV decoding and augmentation, LightningModule, Trainer), in one process.

The arms are read from the study's ``questions.yaml``, so this times exactly what the study trained.
The arms alternate over --repeats rounds; each arm's ratio to the question's reference is the median
of per-round ratios. ``bench/freezing.py`` and ``bench/methods.py`` call it for their questions.

    python bench/study_arms.py --study configs/study_tricks --question freezing --skip features --skip gradual
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



def main(study: str = "", questions: tuple[str, ...] = (), skip: tuple[str, ...] = (), doc: str = __doc__) -> None:
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study", default=study, required=not study, help="a study folder with questions.yaml")
    parser.add_argument("--question", action="append", default=[], help=f"the question(s) (default: {', '.join(questions) or 'required'})")
    parser.add_argument("--skip", action="append", default=list(skip), help="arms not timed")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--set", action="append", default=[], help="config override for every arm")
    args = parser.parse_args()
    quiet_lightning()
    torch.manual_seed(0)
    folder = Path(args.study)
    plan = load_plan(folder)
    names = args.question or list(questions)
    asked = [q for q in plan.questions if q.name in names]
    if not asked:
        parser.error(f"--question: choose from {[q.name for q in plan.questions]}")
    extra = ["train.deterministic=false", "output.dir=/tmp/fgvc-bench", *args.set]
    cfgs = {name: arm_config(folder, plan, q, overrides, extra)
            for q in asked for name, overrides in q.arms.items() if name not in args.skip}
    question = asked[0]
    reference = cfgs[question.reference]
    splits = load_data(reference.data)
    steps_per_epoch = len(splits.train) // reference.train.batch_size
    print(f"{reference.model.name} at {reference.data.transforms.crop} px, batch {reference.train.batch_size}, "
          f"{args.steps} steps after {args.warmup} warm-up, {reference.data.num_workers} workers, "
          f"torch threads {torch.get_num_threads()}, {steps_per_epoch} steps per epoch")
    speeds = alternate({name: (lambda cfg=cfg: fgvc_loop(cfg, splits, args.steps, args.warmup))
                        for name, cfg in cfgs.items()}, args.repeats)
    print(f"{'arm':18s} {'images/s':>9s} {'s/step':>7s} {'s/epoch (train)':>16s}  time vs {question.reference}")
    for name, values in speeds.items():
        rate = statistics.median(values)
        ratio = median_ratio(speeds[question.reference], values)  # time ratio = inverse speed ratio
        print(f"{name:18s} {rate:9.1f} {reference.train.batch_size / rate:7.2f} "
              f"{steps_per_epoch * reference.train.batch_size / rate:16.0f}  {ratio:.2f}  "
              f"(each round: {', '.join(f'{v:.1f}' for v in values)} images/s)")


if __name__ == "__main__":
    main()

"""Why not leave-one-out? 5-fold and 10-fold (each repeated with 5 shuffles) against leave-one-out,
on the demo's cached features (frozen Lite0 at 300 px) with a logistic regression of fixed C, on the
train + val images of ELPV (1,968). The untouched test split (656) gives the accuracy the
estimates try to predict. Prints a Markdown table for docs/tricks.md.

    .venv/bin/python docs/cv_probe.py            # about 10-20 minutes on 2 cores, most of it leave-one-out
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from fgvc.config import load_config
from fgvc.data import load_data
from fgvc.experiments.cv_schemes import compare_schemes, fit_logreg
from fgvc.train.engines.probe import ProbeFeatures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/demo.yaml")
    parser.add_argument("--c", type=float, default=0.1, help="the logistic regression's C (fixed)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--loo-limit", type=int, default=None, help="hold out only this many images in LOO")
    args = parser.parse_args()

    cfg = load_config(args.config)
    splits = load_data(cfg.data)
    features = ProbeFeatures(cfg, splits)
    x = torch.cat([features.get("train")[0], features.get("val")[0]]).numpy()
    y = np.concatenate([splits.train.labels, splits.val.labels])
    x_test, y_test = features.get("test")[0].numpy(), np.asarray(splits.test.labels)

    started = time.perf_counter()
    test_accuracy = float((fit_logreg(x, y, args.c).predict(x_test) == y_test).mean())
    one_fit = time.perf_counter() - started
    rows = compare_schemes(x, y, args.c, (5, 10), args.repeats, loo=True, loo_limit=args.loo_limit)
    print(f"\nELPV 4 grades, frozen Lite0 300 px features + logistic regression (C={args.c}), "
          f"{len(y)} train+val images; test accuracy of the model fitted on all of them: {test_accuracy:.4f} "
          f"({len(y_test)} test images, one fit {one_fit:.1f}s)\n")
    print("| scheme | fits | estimate of accuracy | spread over reshuffles (std) | std over folds | minutes |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        spread = "-" if r.spread is None else f"{r.spread:.4f} ({r.repeats} shuffles)"
        print(f"| {r.scheme} | {r.fits} | {r.estimate:.4f} | {spread} | {r.fold_std:.4f} | {r.seconds / 60:.1f} |")


if __name__ == "__main__":
    main()

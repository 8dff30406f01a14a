"""Label quality of synthetic images: a trained fgvc classifier scores each one; images whose predicted
class is the intended label with at least ``threshold`` confidence are kept."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np

from fgvc.api import load_run, predict
from fgvc.data.sources.synthetic import load_synthetic
from fgvc.groupfolder import SyntheticFolder


def filter_synthetic(run_dir: Path, synthetic_dir: Path, out: Path, threshold: float = 0.5) -> dict:
    """Copy the images that pass into OUT (with their manifest rows, confidence = the classifier's
    probability of the intended label); returns the kept fraction per class."""
    run = load_run(run_dir)
    images = load_synthetic(Path(synthetic_dir), run.class_names)
    probs = predict(run, images).numpy()
    intended = probs[np.arange(len(images)), images.labels]
    keep = (probs.argmax(1) == images.labels) & (intended >= threshold)
    with SyntheticFolder(synthetic_dir).manifest_file.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    out, kept_set = Path(out), SyntheticFolder(out)
    out.mkdir(parents=True, exist_ok=True)
    with kept_set.manifest_file.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for row, kept, confidence in zip(rows, keep, intended):
            if kept:
                (out / row["file"]).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(Path(synthetic_dir) / row["file"], out / row["file"])
                writer.writerow({**row, "confidence": f"{confidence:.6f}"})
    per_class = {}
    for index, name in enumerate(run.class_names):
        mask = images.labels == index
        if mask.any():
            per_class[name] = {"generated": int(mask.sum()), "kept": int(keep[mask].sum()),
                               "kept_fraction": float(keep[mask].mean())}
    report = {"classifier": str(run_dir), "threshold": threshold, "generated": len(images), "kept": int(keep.sum()),
              "per_class": per_class}
    kept_set.filter_report.write_text(json.dumps(report, indent=2))
    return report

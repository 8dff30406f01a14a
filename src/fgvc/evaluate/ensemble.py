"""Ensembles of trained runs, with test-time augmentation: average probabilities (or logits)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, Optional, Sequence

import torch

from fgvc.data import load_data
from fgvc.errors import FgvcError
from fgvc.evaluate.diversity import diversity
from fgvc.evaluate.metrics import compute_metrics, headline
from fgvc.evaluate.predict import predict_logits, write_predictions_csv
from fgvc.evaluate.runs import load_trained
from fgvc.groupfolder import GroupFolder


def ensemble_runs(run_dirs: Sequence[Path], split: str = "test", tta: Sequence[str] = (),
                  combine: Literal["probs", "logits"] = "probs", out: Optional[Path] = None) -> dict[str, Any]:
    """Metrics of each member and of their average on ``split``; members must share classes and data."""
    if not run_dirs:
        raise FgvcError("ensemble needs at least one run folder")
    runs = [load_trained(Path(d)) for d in run_dirs]
    first = runs[0]
    for run in runs[1:]:
        if run.class_names != first.class_names:
            raise FgvcError(f"{run.run_dir} has classes {run.class_names[:5]}..., {first.run_dir} has "
                            f"{first.class_names[:5]}...: an ensemble needs the same classes")
    images = getattr(load_data(first.cfg.data), split, None)
    if images is None or not len(images) or not images.is_labelled:
        raise FgvcError(f"the data set of {first.run_dir} has no labelled {split!r} split")
    targets = torch.as_tensor(images.labels)
    members, stacked = [], []
    for run in runs:
        if run.cfg.data.model_dump() != first.cfg.data.model_dump():
            keys = [str(p) for p in getattr(load_data(run.cfg.data), split).paths or []]
            if keys != [str(p) for p in images.paths or []]:
                raise FgvcError(f"{run.run_dir} was evaluated on other {split} images than {first.run_dir}")
        logits = predict_logits(run.model, images, run.tta_transform(tta), run.cfg.eval.batch_size,
                                num_workers=run.cfg.data.num_workers, tta=tta)
        members.append({"run": str(run.run_dir), **compute_metrics(logits.softmax(-1), targets, first.class_names, first.cfg.eval.top_k)})
        stacked.append(logits)
    logits = torch.stack(stacked)
    probs = logits.mean(0).softmax(-1) if combine == "logits" else logits.softmax(-1).mean(0)
    result: dict[str, Any] = {
        "split": split, "tta": list(tta), "combine": combine, "members": members,
        "members_mean": {k: sum(m[k] for m in members) / len(members) for k in headline(members[0]) if k != "n"},
        "ensemble": compute_metrics(probs, targets, first.class_names, first.cfg.eval.top_k),
        "diversity": diversity([member.argmax(-1) for member in stacked], targets),
    }
    if out is not None:
        folder = GroupFolder(out)
        folder.path.mkdir(parents=True, exist_ok=True)
        folder.ensemble_file.write_text(json.dumps(result, indent=2))
        write_predictions_csv(folder.predictions_file(split), images, probs)
    return result

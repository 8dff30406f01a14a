"""Ensembles of trained runs, with test-time augmentation: average probabilities (or logits)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, Optional, Sequence

import torch

from fgvc.config import load_config
from fgvc.data import ImageList, load_data
from fgvc.data.readable import as_trained
from fgvc.errors import FgvcError
from fgvc.evaluate.diversity import diversity
from fgvc.evaluate.metrics import compute_metrics, headline
from fgvc.evaluate.predict import predict_logits, write_predictions_csv
from fgvc.evaluate.runs import load_trained
from fgvc.groupfolder import GroupFolder
from fgvc.runfolder import RunFolder


def ensemble_runs(run_dirs: Sequence[Path], split: str = "test", tta: Sequence[str] = (),
                  combine: Literal["probs", "logits"] = "probs", out: Optional[Path] = None) -> dict[str, Any]:
    """Metrics of each member and of their average on ``split``; members must share classes and data.

    A member whose predictions_<split>.csv was made by its best checkpoint with these TTA views, on
    these images, is read from there; only the others are loaded and predicted again."""
    if not run_dirs:
        raise FgvcError("ensemble needs at least one run folder")
    runs = [_Member(RunFolder(d).require()) for d in run_dirs]
    first = runs[0]
    for run in runs[1:]:
        if run.class_names != first.class_names:
            raise FgvcError(f"{run.folder.path} has classes {run.class_names[:5]}..., {first.folder.path} has "
                            f"{first.class_names[:5]}...: an ensemble needs the same classes")
    images = getattr(as_trained(load_data(first.cfg.data), first.cfg.data), split, None)
    if images is None or not len(images) or not images.is_labelled:
        raise FgvcError(f"the data set of {first.folder.path} has no labelled {split!r} split")
    targets = torch.as_tensor(images.labels)
    members, stacked = [], []
    for run in runs:
        if run.cfg.data.model_dump() != first.cfg.data.model_dump():
            theirs = getattr(as_trained(load_data(run.cfg.data), run.cfg.data), split)
            # keys, not .paths: packed shards and in-memory pixels have no paths
            if theirs is None or [theirs.key(i) for i in range(len(theirs))] != [images.key(i) for i in range(len(images))]:
                raise FgvcError(f"{run.folder.path} was evaluated on other {split} images than {first.folder.path}")
        logits = saved_logits(run.folder, split, tta, images, combine)
        source = "saved"
        if logits is None:
            trained = load_trained(run.folder.path)
            logits = predict_logits(trained.model, images, trained.tta_transform(tta), trained.cfg.eval.batch_size,
                                    num_workers=trained.cfg.data.num_workers, tta=tta)
            source = "predicted"
        members.append({"run": str(run.folder.path), "predictions": source,
                        **compute_metrics(logits.softmax(-1), targets, first.class_names, first.cfg.eval.top_k)})
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


class _Member:
    """A run folder's config and classes, read without building its model."""

    def __init__(self, folder: RunFolder):
        self.folder = folder
        self.cfg = load_config(folder.config_file)
        self.class_names = folder.class_names() or load_data(self.cfg.data).class_names


def saved_logits(folder: RunFolder, split: str, tta: Sequence[str], images: ImageList,
                 combine: str) -> Optional[torch.Tensor]:
    """Log-probabilities from predictions_<split>.csv (softmax gives the saved probabilities back) when
    the best checkpoint made them with the views ``tta`` on ``images``, in order; else None. Averaging
    logits needs every saved probability above 0 (the file keeps 6 decimals)."""
    made = folder.predicted_with(split)
    if made.get("checkpoint") != RunFolder.BEST or sorted(made.get("tta", ())) != sorted(tta):
        return None
    try:
        rows = folder.predictions(split)
    except (FgvcError, ValueError, KeyError):
        return None
    if [row.image for row in rows] != [images.key(i) for i in range(len(images))]:
        return None
    probs = torch.tensor([row.probs for row in rows], dtype=torch.float64)
    if probs.shape != (len(images), len(images.class_names)) or (combine == "logits" and not (probs > 0).all()):
        return None
    return probs.log().float()

"""Metrics of a classifier's probabilities on a labelled split (torchmetrics' functional API)."""

from __future__ import annotations

from typing import Any

import torch
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_auroc,
    multiclass_calibration_error,
    multiclass_confusion_matrix,
    multiclass_f1_score,
    multiclass_precision,
    multiclass_recall,
)


def compute_metrics(probs: torch.Tensor, targets: torch.Tensor, class_names: list[str], top_k: int = 5) -> dict[str, Any]:
    """top-1/top-k, macro precision/recall/F1, macro one-vs-rest AUROC, ECE, per-class accuracy, per-class
    precision/recall/F1/support, confusion.

    top-k (``eval.top_k``) is left out when k >= the class count: it would be 1.0 by construction.

    Macro averages run over the classes present in ``targets`` (a class absent from the split has no
    recall to average).
    """
    probs = probs.float()
    targets = targets.long()
    num_classes = len(class_names)
    present = torch.bincount(targets, minlength=num_classes) > 0

    def macro(fn) -> float:
        per_class = fn(probs, targets, num_classes=num_classes, average="none")
        return float(per_class[present].mean())

    per_class_acc = multiclass_accuracy(probs, targets, num_classes=num_classes, average="none")
    result: dict[str, Any] = {
        "n": int(len(targets)),
        "top1": float(multiclass_accuracy(probs, targets, num_classes=num_classes, average="micro", top_k=1)),
        **({f"top{top_k}": float(multiclass_accuracy(probs, targets, num_classes=num_classes, average="micro",
                                                     top_k=top_k))} if 1 < top_k < num_classes else {}),
        "precision_macro": macro(multiclass_precision),
        "recall_macro": macro(multiclass_recall),
        "f1_macro": macro(multiclass_f1_score),
        "ece": float(multiclass_calibration_error(probs, targets, num_classes=num_classes, n_bins=15, norm="l1")),
    }
    if int(present.sum()) >= 2:
        auroc = multiclass_auroc(probs, targets, num_classes=num_classes, average="none")
        result["auroc_macro"] = float(auroc[present].mean())
    result["per_class_accuracy"] = {
        name: float(acc) for name, acc, here in zip(class_names, per_class_acc, present) if here
    }
    precision, recall, f1 = (fn(probs, targets, num_classes=num_classes, average="none")
                             for fn in (multiclass_precision, multiclass_recall, multiclass_f1_score))
    support = torch.bincount(targets, minlength=num_classes)
    result["per_class"] = {
        name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
               "support": int(support[i])}
        for i, name in enumerate(class_names)
    }
    result["confusion_matrix"] = multiclass_confusion_matrix(probs, targets, num_classes=num_classes).tolist()
    return result


def headline(metrics: dict[str, Any]) -> dict[str, float]:
    """The scalar metrics (no per-class tables), for printing and comparing."""
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float))}

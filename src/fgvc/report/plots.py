"""Learning curves and confusion matrices as PNG files (matplotlib, no display needed)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_learning_curves(history_csv: Path, out: Path) -> Path:
    """Loss and accuracy per epoch (train and val) from ``history.csv``."""
    with Path(history_csv).open() as handle:
        rows = list(csv.DictReader(handle))
    epochs = [int(r["epoch"]) + 1 for r in rows]
    figure, (loss_axis, acc_axis) = plt.subplots(1, 2, figsize=(10, 4))
    for axis, metric in ((loss_axis, "loss"), (acc_axis, "top1")):
        for split in ("train", "val"):
            key = f"{split}/{metric}"
            values = [float(r[key]) if r.get(key) not in (None, "") else np.nan for r in rows]
            if not np.all(np.isnan(values)):
                axis.plot(epochs, values, marker="o", label=split)
        axis.set_xlabel("epoch")
        axis.set_title({"loss": "loss", "top1": "top-1 accuracy"}[metric])
        axis.grid(alpha=0.3)
        axis.legend()
    figure.subplots_adjust(left=0.07, right=0.98, bottom=0.13, top=0.9, wspace=0.2)  # fixed: cheaper than tight
    figure.savefig(out, dpi=100)
    plt.close(figure)
    return Path(out)


def top_confusions(matrix: np.ndarray, class_names: Sequence[str], count: int = 20) -> list[tuple[str, str, int]]:
    """The most frequent (true, predicted) pairs off the diagonal."""
    off = np.array(matrix, dtype=float)
    np.fill_diagonal(off, 0)
    flat = np.argsort(off, axis=None)[::-1][:count]
    pairs = []
    for index in flat:
        true, predicted = np.unravel_index(index, off.shape)
        if off[true, predicted] > 0:
            pairs.append((class_names[true], class_names[predicted], int(off[true, predicted])))
    return pairs


def plot_confusion_matrix(matrix, class_names: Sequence[str], out: Path, max_labelled: int = 30) -> Path:
    """Row-normalised confusion matrix. Up to ``max_labelled`` classes: annotated heatmap. More (e.g. 200
    birds): classes sorted by accuracy, an unlabelled heatmap, and the top confusions listed beside it."""
    matrix = np.asarray(matrix, dtype=float)
    rows = matrix.sum(1, keepdims=True)
    normalised = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    n = len(class_names)
    if n <= max_labelled:
        size = max(4, 0.45 * n + 2)
        figure, axis = plt.subplots(figsize=(size + 1, size))
        image = axis.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
        axis.set_xticks(range(n), class_names, rotation=60, ha="right", fontsize=8)
        axis.set_yticks(range(n), class_names, fontsize=8)
        if n <= 15:
            for (i, j), value in np.ndenumerate(normalised):
                if matrix[i, j]:
                    axis.text(j, i, f"{value:.2f}\n({int(matrix[i, j])})", ha="center", va="center", fontsize=7,
                              color="white" if value > 0.5 else "black")
        axis.set_xlabel("predicted")
        axis.set_ylabel("true")
        figure.colorbar(image, ax=axis, fraction=0.046)
    else:
        order = np.argsort(np.diag(normalised))  # worst classes first
        figure, (axis, text_axis) = plt.subplots(1, 2, figsize=(16, 8), gridspec_kw={"width_ratios": [3, 2]})
        image = axis.imshow(normalised[np.ix_(order, order)], cmap="Blues", vmin=0, vmax=1)
        axis.set_title(f"{n} classes, sorted by accuracy (worst first)")
        axis.set_xlabel("predicted")
        axis.set_ylabel("true")
        figure.colorbar(image, ax=axis, fraction=0.046)
        text_axis.axis("off")
        lines = [f"{count:4d}  {true}  ->  {pred}" for true, pred, count in top_confusions(matrix, class_names, 30)]
        text_axis.text(0, 1, "most confused pairs (count, true -> predicted)\n\n" + "\n".join(lines),
                       va="top", family="monospace", fontsize=8)
    figure.tight_layout()
    figure.savefig(out, dpi=100)
    plt.close(figure)
    return Path(out)

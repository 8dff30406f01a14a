"""Learning curves, confusion matrices, reliability diagrams and group plots as PNG files (matplotlib, no
display needed)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402


CURVE_PANELS = (("loss", ("train/loss", "val/loss")), ("top-1 accuracy", ("train/top1", "val/top1")),
                ("macro F1", ("train/f1_macro", "val/f1_macro")), ("learning rate", ("lr",)))


def read_history(history_csv: Path) -> list[dict]:
    with Path(history_csv).open() as handle:
        return list(csv.DictReader(handle))


def history_column(rows: list[dict], key: str) -> list[float]:
    """One metric of history.csv rows as floats, NaN where an epoch did not record it."""
    return [float(r[key]) if r.get(key) not in (None, "") else np.nan for r in rows]


def epoch_axis(axis) -> None:
    """An x axis of whole epochs with a light grid."""
    axis.set_xlabel("epoch")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    axis.grid(alpha=0.3)


def plot_learning_curves(history_csv: Path, out: Path) -> Path:
    """Loss, top-1, macro F1 (train and val where recorded) and the learning rate per epoch (1-based,
    like the log) from ``history.csv``."""
    rows = read_history(history_csv)
    epochs = [int(r["epoch"]) + 1 for r in rows]
    recorded = {key: history_column(rows, key) for _, keys in CURVE_PANELS for key in keys}
    recorded = {key: values for key, values in recorded.items() if not np.all(np.isnan(values))}
    panels = [(title, [k for k in keys if k in recorded]) for title, keys in CURVE_PANELS]
    panels = [(title, keys) for title, keys in panels if keys] or [("loss", [])]  # e.g. a probe logs no lr
    lines = -(-len(panels) // 2)
    figure, axes = plt.subplots(lines, 2, figsize=(10, 3.5 * lines), squeeze=False)
    for axis in axes.ravel()[len(panels):]:
        axis.axis("off")
    for axis, (title, keys) in zip(axes.ravel(), panels):
        for key in keys:
            axis.plot(epochs, recorded[key], marker="o", label=key.split("/")[0] if "/" in key else key)
        if title == "learning rate" and all(v > 0 for v in recorded["lr"] if not np.isnan(v)):
            axis.set_yscale("log")
        axis.set_title(title)
        epoch_axis(axis)
        if len(keys) > 1 or (keys and "/" in keys[0]):
            axis.legend()
    figure.tight_layout()
    figure.savefig(out, dpi=100)
    plt.close(figure)
    return Path(out)


def reliability_bins(confidence: np.ndarray, correct: np.ndarray, bins: int = 15):
    """Per equal-width confidence bin: (mean confidence, accuracy, count), and the expected calibration
    error they give (the same binning as torchmetrics' ECE: 15 bins, L1)."""
    confidence, correct = np.asarray(confidence, float), np.asarray(correct, float)
    index = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    count = np.bincount(index, minlength=bins)
    mean_conf = np.divide(np.bincount(index, confidence, bins), count, out=np.zeros(bins), where=count > 0)
    accuracy = np.divide(np.bincount(index, correct, bins), count, out=np.zeros(bins), where=count > 0)
    ece = float(np.sum(count / max(1, len(confidence)) * np.abs(accuracy - mean_conf)))
    return mean_conf, accuracy, count, ece


def plot_reliability(confidence, correct, out: Path, split: str = "test", bins: int = 15) -> Path:
    """Reliability diagram: accuracy against confidence per bin, the diagonal of perfect calibration, the
    gap shaded, image counts per bin below, ECE in the title."""
    mean_conf, accuracy, count, ece = reliability_bins(confidence, correct, bins)
    centres = (np.arange(bins) + 0.5) / bins
    figure, (axis, counts) = plt.subplots(2, 1, figsize=(5, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    used = count > 0
    axis.bar(centres[used], accuracy[used], width=1 / bins, edgecolor="black", color="#4c72b0", label="accuracy")
    low, high = np.minimum(accuracy, mean_conf), np.maximum(accuracy, mean_conf)
    axis.bar(centres[used], (high - low)[used], bottom=low[used], width=1 / bins, color="none",
             edgecolor="#c44e52", hatch="//", label="gap to mean confidence")
    axis.plot([0, 1], [0, 1], "k--", label="perfect calibration")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1)
    axis.set_ylabel("accuracy")
    axis.set_title(f"reliability ({split} split, {int(count.sum())} images): ECE {ece:.3f}")
    axis.legend(loc="upper left", fontsize=8)
    counts.bar(centres, count, width=1 / bins, color="grey", edgecolor="black")
    counts.set_xlabel("confidence (top-1 probability)")
    counts.set_ylabel("images")
    figure.tight_layout()
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


def plot_confusion_matrix(matrix, class_names: Sequence[str], out: Path, max_labelled: int = 30,
                          split: Optional[str] = None) -> Path:
    """Row-normalised confusion matrix. Up to ``max_labelled`` classes: annotated heatmap. More (e.g. 200
    birds): classes sorted by accuracy, an unlabelled heatmap, and the top confusions listed beside it."""
    matrix = np.asarray(matrix, dtype=float)
    rows = matrix.sum(1, keepdims=True)
    normalised = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    n = len(class_names)
    named = f"{split} split, {int(matrix.sum())} images" if split else f"{int(matrix.sum())} images"
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
        axis.set_title(f"confusion matrix ({named}), rows normalised", fontsize=9)
        figure.colorbar(image, ax=axis, fraction=0.046)
    else:
        order = np.argsort(np.diag(normalised))  # worst classes first
        figure, (axis, text_axis) = plt.subplots(1, 2, figsize=(16, 8), gridspec_kw={"width_ratios": [3, 2]})
        image = axis.imshow(normalised[np.ix_(order, order)], cmap="Blues", vmin=0, vmax=1)
        axis.set_title(f"confusion matrix ({named}): {n} classes, sorted by accuracy (worst first)")
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

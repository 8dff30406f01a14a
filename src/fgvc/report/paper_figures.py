"""Figures for a paper as vector PDFs, one column of a two-column page wide (3.3 in): training curves,
confusion matrix, reliability diagram, and a study's forest plot of paired differences with their CIs."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from fgvc.report.frames import metric_label  # noqa: E402
from fgvc.report.plots import history_column, reliability_bins  # noqa: E402

COLUMN_WIDTH = 3.3  # inches: one column of a two-column page (CVPR, IEEE, ACM)
STYLE = {"font.size": 7, "axes.titlesize": 7, "axes.labelsize": 7, "legend.fontsize": 6, "xtick.labelsize": 6,
         "ytick.labelsize": 6, "pdf.fonttype": 42, "lines.linewidth": 1.0, "lines.markersize": 3}


def _save(figure, out: Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, format="pdf", bbox_inches="tight", pad_inches=0.02)
    plt.close(figure)
    return out


def curves_pdf(histories: dict[str, Sequence[dict]], out: Path) -> Path:
    """Loss and top-1 per epoch: train and val of one run, or val of each member of a group."""
    with plt.rc_context(STYLE):
        figure, (loss, top1) = plt.subplots(1, 2, figsize=(COLUMN_WIDTH, 1.5))
        single = len(histories) == 1
        for name, rows in histories.items():
            epochs = [int(r["epoch"]) + 1 for r in rows]
            for axis, key in ((loss, "loss"), (top1, "top1")):
                for split in (("train", "val") if single else ("val",)):
                    values = history_column(list(rows), f"{split}/{key}")
                    if rows and not np.all(np.isnan(values)):
                        axis.plot(epochs, values, marker=".", label=split if single else name)
        for axis, title in ((loss, "loss"), (top1, "top-1")):
            axis.set_title(title if single else f"val {title}")
            axis.set_xlabel("epoch")
            axis.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
            axis.grid(alpha=0.3)
        handles, labels = loss.get_legend_handles_labels()
        if handles and len(labels) <= 8:
            top1.legend(fontsize=5, loc="best")
        figure.tight_layout(pad=0.3)
        return _save(figure, out)


def confusion_pdf(matrix, class_names: Sequence[str], out: Path, split: str = "test") -> Path:
    """Row-normalised confusion matrix, annotated up to 10 classes, labelled up to 30."""
    matrix = np.asarray(matrix, dtype=float)
    rows = matrix.sum(1, keepdims=True)
    normalised = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    n = len(matrix)
    with plt.rc_context(STYLE):
        figure, axis = plt.subplots(figsize=(COLUMN_WIDTH, COLUMN_WIDTH * 0.8))
        image = axis.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
        if n <= 30:
            names = [str(c) for c in class_names]
            axis.set_xticks(range(n), names, rotation=45, ha="right", fontsize=5 if n > 10 else 6)
            axis.set_yticks(range(n), names, fontsize=5 if n > 10 else 6)
        else:
            axis.set_xticks([])
            axis.set_yticks([])
        if n <= 10:
            for (i, j), value in np.ndenumerate(normalised):
                axis.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=5,
                          color="white" if value > 0.5 else "black")
        axis.set_xlabel("predicted")
        axis.set_ylabel("true")
        axis.set_title(f"{split} split, {int(matrix.sum())} images, rows normalised")
        figure.colorbar(image, ax=axis, fraction=0.046, pad=0.03)
        figure.tight_layout(pad=0.3)
        return _save(figure, out)


def reliability_pdf(confidence, correct, out: Path, split: str = "test", bins: int = 15) -> Path:
    """Accuracy against confidence per bin, the diagonal of perfect calibration, ECE in the title."""
    mean_conf, accuracy, count, ece = reliability_bins(confidence, correct, bins)
    centres = (np.arange(bins) + 0.5) / bins
    used = count > 0
    with plt.rc_context(STYLE):
        figure, axis = plt.subplots(figsize=(COLUMN_WIDTH, 2.3))
        axis.bar(centres[used], accuracy[used], width=1 / bins, edgecolor="black", linewidth=0.4, color="#4c72b0",
                 label="accuracy")
        axis.plot([0, 1], [0, 1], "k--", linewidth=0.8, label="calibrated")
        axis.set_xlim(0, 1)
        axis.set_ylim(0, 1)
        axis.set_xlabel("confidence")
        axis.set_ylabel("accuracy")
        axis.set_title(f"{split}: {int(count.sum())} images, ECE {ece:.3f}")
        axis.legend(loc="upper left")
        figure.tight_layout(pad=0.3)
        return _save(figure, out)


def forest_pdf(frame: pd.DataFrame, out: Path) -> Path:
    """Each arm minus the reference with its CI, one panel per metric; filled where significant."""
    metrics = frame.attrs["metrics"]
    rows = frame[~frame["reference"]]
    names = list(rows.index)[::-1]  # the first arm on top
    with plt.rc_context(STYLE):
        height = 0.45 + (0.16 * len(names) + 0.35) * len(metrics)
        figure, axes = plt.subplots(len(metrics), 1, figsize=(COLUMN_WIDTH, height), squeeze=False)
        for axis, metric in zip(axes[:, 0], metrics):
            for y, name in enumerate(names):
                row = rows.loc[name]
                if not row[f"{metric} verdict"]:
                    continue
                diff, low, high = row[f"{metric} diff"], row[f"{metric} diff low"], row[f"{metric} diff high"]
                significant = row[f"{metric} verdict"] != "same"
                axis.plot([low, high], [y, y], color="#4c72b0", linewidth=1.2)
                axis.plot([diff], [y], "o", color="#4c72b0", markerfacecolor="#4c72b0" if significant else "white")
            axis.axvline(0, color="black", linewidth=0.6, linestyle="--")
            axis.set_yticks(range(len(names)), names)
            axis.set_ylim(-0.6, len(names) - 0.4)
            axis.set_xlabel(f"{metric_label(metric)}: arm $-$ {frame.attrs['reference']}")
            axis.grid(alpha=0.3, axis="x")
        figure.tight_layout(pad=0.3, h_pad=0.4)
        return _save(figure, out)

"""A group's plots (repeat, crossval, sweep members): each member's metric as a point with the group's
mean and confidence interval, and every member's learning curves on shared axes."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from fgvc.report.plots import epoch_axis, history_column  # noqa: E402

MEMBER_METRICS = ("top1", "f1_macro", "auroc_macro", "recall_macro", "ece")


def plot_members(table: dict, member_values: dict[str, dict], split: str, out: Path) -> Path:
    """One panel per metric of ``table`` (summary.json's metrics for ``split``): a dot per member and
    the mean with its CI as an error bar."""
    metrics = [m for m in MEMBER_METRICS if m in table] or list(table)[:6]
    figure, axes = plt.subplots(1, len(metrics), figsize=(2.4 * len(metrics) + 0.6, 3.6), squeeze=False)
    names = list(member_values)
    for axis, metric in zip(axes[0], metrics):
        values = [member_values[n].get(metric) for n in names]
        points = [(i, v) for i, v in enumerate(values) if isinstance(v, (int, float))]
        spread = np.linspace(-0.15, 0.15, max(1, len(points)))
        axis.scatter([spread[k] for k in range(len(points))], [v for _, v in points], color="#4c72b0", zorder=3,
                     label="members")
        d = table[metric]
        if d.get("ci_low") is not None:  # drawn as a line: a CI need not be symmetric or hold the mean
            axis.vlines([0.45], d["ci_low"], d["ci_high"], color="#c44e52", linewidth=2,
                        label=f"{int(100 * d['confidence'])}% CI")
            axis.hlines([d["ci_low"], d["ci_high"]], 0.38, 0.52, color="#c44e52", linewidth=2)
        axis.scatter([0.45], [d["mean"]], marker="s", color="#c44e52", zorder=4, label="mean")
        axis.set_xlim(-0.5, 0.8)
        axis.set_xticks([])
        axis.set_title(metric, fontsize=10)
        axis.grid(alpha=0.3, axis="y")
    axes[0][0].legend(fontsize=7, loc="best")
    figure.suptitle(f"{split} split: {len(names)} members", fontsize=10)
    figure.tight_layout()
    figure.savefig(out, dpi=100)
    plt.close(figure)
    return Path(out)


def plot_member_curves(histories: dict[str, Sequence[dict]], out: Path) -> Path:
    """Validation top-1, macro F1 and loss, and training loss, per epoch: one line per member."""
    panels = (("val/top1", "val top-1"), ("val/f1_macro", "val macro F1"), ("val/loss", "val loss"),
              ("train/loss", "train loss"))
    figure, axes = plt.subplots(2, 2, figsize=(10, 7))
    for axis, (key, title) in zip(axes.ravel(), panels):
        for name, rows in histories.items():
            values = history_column(list(rows), key)
            if rows and not np.all(np.isnan(values)):
                axis.plot([int(r["epoch"]) + 1 for r in rows], values, marker=".", label=name)
        axis.set_title(title)
        epoch_axis(axis)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        figure.legend(handles, labels, loc="lower center", ncol=min(6, len(labels)), fontsize=8)
    figure.subplots_adjust(left=0.08, right=0.98, bottom=0.14, top=0.95, wspace=0.22, hspace=0.35)
    figure.savefig(out, dpi=100)
    plt.close(figure)
    return Path(out)

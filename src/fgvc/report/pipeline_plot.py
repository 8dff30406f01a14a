"""The pipeline plan as a bar chart: each stage's time per micro-batch under the equal and the
balanced split, the bottleneck stage outlined."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_plan(plan: dict, out: Path) -> Path:
    stages = plan["stages"]
    figure, axis = plt.subplots(figsize=(1.6 * stages + 3, 3.8))
    width = 0.38
    for offset, (key, colour) in zip((-width / 2, width / 2), (("equal", "#8c8c8c"), ("balanced", "#4c72b0"))):
        split = plan[key]
        times = [1000 * s["seconds"] for s in split["stages"]]
        bars = axis.bar(np.arange(stages) + offset, times, width, color=colour,
                        label=f"{key}: {split['predicted_images_per_s']:.1f} img/s predicted")
        bars[split["bottleneck_stage"]].set_edgecolor("#c44e52")
        bars[split["bottleneck_stage"]].set_linewidth(2.5)
    axis.set_xticks(range(stages), [f"stage {s}" for s in range(stages)])
    axis.set_ylabel("forward + backward per micro-batch (ms)")
    axis.set_title(f"{plan['model']}, {plan['image_size']} px, {plan['microbatches']} x {plan['microbatch']} images, "
                   f"{plan['schedule']}: bottleneck outlined", fontsize=9)
    axis.legend(fontsize=8)
    axis.grid(alpha=0.3, axis="y")
    figure.tight_layout()
    figure.savefig(out, dpi=100)
    plt.close(figure)
    return Path(out)

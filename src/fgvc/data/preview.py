"""A PNG grid of augmented training samples with their labels (``fgvc data show``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from fgvc.data.images import ImageList  # noqa: E402
from fgvc.data.transforms import Normalization  # noqa: E402


def denormalize(tensor: torch.Tensor, norm: Normalization) -> np.ndarray:
    """A normalised CHW tensor back to an HWC array in [0, 1] for display."""
    mean = torch.tensor(norm.mean).view(3, 1, 1)
    std = torch.tensor(norm.std).view(3, 1, 1)
    return (tensor * std + mean).clamp(0, 1).permute(1, 2, 0).numpy()


def save_sample_grid(
    images: ImageList, transform: Callable, norm: Normalization, out: Path, count: int = 16, seed: int = 0
) -> Path:
    """Save ``count`` randomly chosen, transformed images with their class names as a PNG grid."""
    if len(images) == 0:
        raise ValueError("no images to show")
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # the random augmentations draw from the global generator
    chosen = torch.randperm(len(images), generator=generator)[:count].tolist()
    columns = min(len(chosen), 8)
    rows = math.ceil(len(chosen) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(2.2 * columns, 2.4 * rows), squeeze=False)
    for axis in axes.ravel():
        axis.axis("off")
    for axis, index in zip(axes.ravel(), chosen):
        axis.imshow(denormalize(transform(images.load(index)), norm))
        label = int(images.labels[index])
        axis.set_title(images.class_names[label] if label >= 0 else "(unlabelled)", fontsize=8)
    figure.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)
    plt.close(figure)
    return out


def preview_config(cfg, out: Path, count: int = 16, split: str = "train", augmented: bool = True) -> Path:
    """``fgvc data show``: a grid of ``count`` images of ``split`` as the model will see them."""
    from fgvc.data import load_data
    from fgvc.data.transforms import transforms_for

    splits = load_data(cfg.data)
    images = dict(splits.named()).get(split)
    if images is None:
        from fgvc.errors import DataError

        raise DataError(f"split {split!r} is empty or absent; splits here: {[n for n, _ in splits.named()]}")
    transforms = transforms_for(cfg)
    transform = transforms.train if augmented else transforms.eval
    return save_sample_grid(images, transform, transforms.norm, out, count=count, seed=cfg.seed)

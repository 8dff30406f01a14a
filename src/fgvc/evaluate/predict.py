"""Predictions: class probabilities for a split or a folder, the predictions CSV and Kaggle submissions."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Callable, Literal, Optional, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader

from fgvc.data.datamodule import SeededImageDataset
from fgvc.data.images import ImageList


@torch.no_grad()
def predict_probs(
    model: nn.Module, images: ImageList, transform: Callable, batch_size: int = 64, num_workers: int = 0,
    device: Optional[torch.device] = None, tta: Sequence[str] = (), channels_last: bool = False,
) -> torch.Tensor:
    """Softmax probabilities (N x C) in the order of ``images``; ``tta=['flip']`` averages a mirrored view."""
    device = device or next(model.parameters()).device
    model.eval()
    loader = DataLoader(SeededImageDataset(images, transform, seed=0), batch_size=batch_size, shuffle=False,
                        num_workers=num_workers)
    outputs = []
    for batch, _ in loader:
        batch = batch.to(device)
        if channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        probs = model(batch).float().softmax(-1)
        if "flip" in tta:
            probs = (probs + model(batch.flip(-1)).float().softmax(-1)) / 2
        outputs.append(probs.cpu())
    return torch.cat(outputs) if outputs else torch.zeros(0, len(images.class_names))


def write_predictions_csv(path: Path, images: ImageList, probs: torch.Tensor) -> Path:
    """One row per image: image, true label (name), predicted label (name), confidence, p_<class>..."""
    names = images.class_names
    predicted = probs.argmax(-1)
    with Path(path).open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "target", "target_name", "predicted", "predicted_name", "confidence",
                         *[f"p_{n}" for n in names]])
        for i in range(len(images)):
            target = int(images.labels[i])
            writer.writerow([
                images.key(i), target, names[target] if target >= 0 else "", int(predicted[i]),
                names[int(predicted[i])], f"{float(probs[i].max()):.6f}", *[f"{float(p):.6f}" for p in probs[i]],
            ])
    return Path(path)


def write_submission(
    path: Path, ids: Sequence[str], probs: torch.Tensor, class_names: Sequence[str],
    kind: Literal["label", "probs"] = "label", id_column: str = "id", label_column: str = "label",
) -> Path:
    """A Kaggle submission: ``id,label`` (cifar-10 style) or ``id,<class 1>,<class 2>...`` probabilities
    (dog-breed-identification style)."""
    with Path(path).open("w", newline="") as handle:
        writer = csv.writer(handle)
        if kind == "label":
            writer.writerow([id_column, label_column])
            for image_id, row in zip(ids, probs):
                writer.writerow([image_id, class_names[int(row.argmax())]])
        else:
            writer.writerow([id_column, *class_names])
            for image_id, row in zip(ids, probs):
                writer.writerow([image_id, *[f"{float(p):.6f}" for p in row]])
    return Path(path)

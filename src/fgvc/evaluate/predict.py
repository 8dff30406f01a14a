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
from fgvc.runfolder import PREDICTION_COLUMNS, PROBABILITY_PREFIX
from fgvc.models.layout import inference_layout, to_layout
from fgvc.progress import track


class FiveCropViews:
    """Test-time crops: resize the short side, then the centre and four corner crops (torchvision's
    FiveCrop), each normalised like the eval transform; returns a (5, C, H, W) tensor."""

    def __init__(self, resize: int, crop: int, mean, std, interpolation: str = "bilinear"):
        from torchvision import transforms as T
        from timm.data.transforms import str_to_interp_mode

        self.resize = T.Resize(resize, interpolation=str_to_interp_mode(interpolation))
        self.five = T.FiveCrop(crop)
        self.finish = T.Compose([T.ToTensor(), T.Normalize(mean, std)])

    def __call__(self, image):
        return torch.stack([self.finish(view) for view in self.five(self.resize(image))])


def tta_views(batch: torch.Tensor, tta: Sequence[str]) -> list[torch.Tensor]:
    """The test-time views of a batch: itself; + its mirror (``flip``); or the 8 elements of D4
    (``d4``: 4 rotations by 90 degrees of the image and of its mirror)."""
    if "d4" in tta:
        return [torch.rot90(view, k, dims=(-2, -1)) for view in (batch, batch.flip(-1)) for k in range(4)]
    if "flip" in tta:
        return [batch, batch.flip(-1)]
    return [batch]


@torch.no_grad()
def predict_logits(
    model: nn.Module, images: ImageList, transform: Callable, batch_size: int = 64, num_workers: int = 0,
    device: Optional[torch.device] = None, tta: Sequence[str] = (), channels_last: Optional[bool] = None,
) -> torch.Tensor:
    """Logits (N x C) in the order of ``images``, averaged over test-time views: ``flip`` adds the
    mirrored image, ``d4`` the 8 flips and rotations, ``crops`` needs ``transform`` to return several views per image (FiveCropViews).
    ``channels_last`` None: when the network is mostly convolutions (faster; see models.layout)."""
    device = device or next(model.parameters(), torch.empty(0)).device  # an ONNX Runtime model has none: CPU
    model.eval()
    loader = DataLoader(SeededImageDataset(images, transform, seed=0), batch_size=batch_size, shuffle=False,
                        num_workers=num_workers)
    outputs = []
    with inference_layout(model, channels_last) as nhwc:
        for batch, _ in track(loader, f"predicting {len(images)} images"):
            batch = batch.to(device)
            crops = 1
            if batch.ndim == 5:  # (B, V, C, H, W): several crops per image
                crops = batch.shape[1]
                batch = batch.flatten(0, 1)
            logits = torch.stack([model(to_layout(v, nhwc)).float() for v in tta_views(batch, tta)]).mean(0)
            outputs.append(logits.view(-1, crops, logits.shape[-1]).mean(1).cpu())
    return torch.cat(outputs) if outputs else torch.zeros(0, len(images.class_names))


def predict_probs(model: nn.Module, images: ImageList, transform: Callable, batch_size: int = 64,
                  num_workers: int = 0, device: Optional[torch.device] = None, tta: Sequence[str] = (),
                  channels_last: Optional[bool] = None) -> torch.Tensor:
    """Softmax probabilities (N x C); test-time views are averaged in logit space first."""
    return predict_logits(model, images, transform, batch_size, num_workers, device, tta, channels_last).softmax(-1)


def write_predictions_csv(path: Path, images: ImageList, probs: torch.Tensor) -> Path:
    """One row per image: image, true label (name), predicted label (name), confidence, p_<class>..."""
    names = images.class_names
    predicted = probs.argmax(-1)
    with Path(path).open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*PREDICTION_COLUMNS, *[f"{PROBABILITY_PREFIX}{n}" for n in names]])
        for i in range(len(images)):
            target = int(images.labels[i])
            writer.writerow([
                images.key(i), target, names[target] if target >= 0 else "", int(predicted[i]),
                names[int(predicted[i])], f"{float(probs[i].max()):.6f}",
                *[f"{float(p):.9g}" for p in probs[i]],  # float32 exactly: an ensemble reads them back (ties too)
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

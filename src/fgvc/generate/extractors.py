"""Feature extractors for FID / KID, each named so its numbers are never mistaken for another's.

- ``inception_v3_tf``: the TF-ported Inception-v3 of the original FID paper (2015-12-05 weights),
  through torch-fidelity, the implementation torchmetrics uses. With those weights the numbers are
  the standard FID and KID. Online it downloads them once; offline pass the file (torch-fidelity's
  ``weights-inception-2015-12-05-*.pth`` or pytorch-fid's ``pt_inception-2015-12-05-*.pth``).
- ``inception_v3``: torchvision's ImageNet Inception-v3 from a local file; close, not standard.
- any timm / fgvc model name: pooled features of that backbone.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import timm
import torch
from torch import nn

from fgvc.data.datamodule import SeededImageDataset
from fgvc.data.images import ImageList
from fgvc.errors import FgvcError

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
TF_INCEPTION = "inception_v3_tf"


@dataclass
class FeatureExtractor:
    name: str
    model: nn.Module
    transform: Callable  # PIL image -> tensor the model takes
    size: int
    weights: Optional[str] = None  # file name and sha256 prefix, so a reader can check which weights

    @torch.no_grad()
    def __call__(self, images: ImageList, batch_size: int = 64) -> np.ndarray:
        loader = torch.utils.data.DataLoader(SeededImageDataset(images, self.transform, 0), batch_size=batch_size)
        self.model.eval()
        return torch.cat([self.model(batch).float() for batch, _ in loader]).numpy().astype(np.float64)


def normalized_transform(size: int, mean: tuple, std: tuple) -> Callable:
    from torchvision import transforms as T

    return T.Compose([T.Resize((size, size)), T.ToTensor(), T.Normalize(mean, std)])


def describe_file(path: Path) -> str:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return f"{path.name} (sha256 {digest[:12]})"


def timm_extractor(name: str, weights: Optional[str] = None, size: int = 224, pretrained: bool = False) -> FeatureExtractor:
    """Pooled features of a timm (or fgvc) model; ``weights`` is a local file for offline use."""
    import fgvc.models  # noqa: F401  (registers fgvc's own models)
    from fgvc.models.weights import load_weights_file

    try:
        model = timm.create_model(name, pretrained=pretrained and not weights, num_classes=0)
    except Exception as exc:  # noqa: BLE001 - offline hub errors come in many types
        raise FgvcError(f"feature extractor {name!r}: {exc}; offline, pass a local weights file (--weights)") from None
    if weights:
        load_weights_file(model, weights)
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    tag = name if (pretrained or weights) else f"{name}, random init"
    mean, std = tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD))
    return FeatureExtractor(tag, model, normalized_transform(size, mean, std), size)


def inception_extractor(weights: str) -> FeatureExtractor:
    """torchvision's Inception-v3 (2048-d pool features, 299 px) from a local weights file, e.g. the
    ImageNet ``inception_v3_google-*.pth``. Named as such: the TF-ported weights of the original FID
    paper (:func:`tf_inception_extractor`) give somewhat different numbers."""
    from torchvision.models import inception_v3

    from fgvc.models.weights import read_state_dict, resolve_weights_path

    path = resolve_weights_path(weights)
    model = inception_v3(weights=None, aux_logits=False, init_weights=False)
    state = {k: v for k, v in read_state_dict(path).items() if not k.startswith("AuxLogits")}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # same names, other shapes
        raise FgvcError(f"{weights} is not an Inception-v3 state dict: {str(exc).splitlines()[-1].strip()}") from None
    if missing or unexpected:
        raise FgvcError(f"{weights} is not an Inception-v3 state dict (missing {missing[:3]}, unexpected {unexpected[:3]})")
    model.fc = nn.Identity()
    return FeatureExtractor("inception_v3 (torchvision weights)", model,
                            normalized_transform(299, IMAGENET_MEAN, IMAGENET_STD), 299, describe_file(path))


class _Pool2048(nn.Module):
    """torch-fidelity's extractor returns a tuple of the requested features; FID uses the 2048-d pool."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.network(images)[0]


def _uint8_299(image) -> torch.Tensor:
    """The network takes uint8 RGB. Images are brought to 299 px with PIL's antialiased bicubic first
    (as clean-fid does), so sets of mixed sizes batch together and the network's own resize is a no-op."""
    from PIL import Image
    from torchvision.transforms.functional import pil_to_tensor

    return pil_to_tensor(image.convert("RGB").resize((299, 299), Image.BICUBIC))


def tf_inception_extractor(weights: Optional[str] = None) -> FeatureExtractor:
    """The standard FID network: TF-ported Inception-v3 (torch-fidelity), 2048-d pool features.

    ``weights``: a local copy of the 2015-12-05 weights; None downloads them (online users only).
    """
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    from fgvc.models.weights import read_state_dict, resolve_weights_path

    if weights is None:
        try:
            network = FeatureExtractorInceptionV3(TF_INCEPTION, ["2048"])
        except Exception as exc:  # noqa: BLE001 - offline download errors come in many types
            raise FgvcError(
                f"{TF_INCEPTION}: cannot download the FID Inception weights ({type(exc).__name__}: {exc}). Offline, "
                "pass a local copy with --weights (weights-inception-2015-12-05-6726825d.pth from torch-fidelity, "
                "or pt_inception-2015-12-05-6726825d.pth from pytorch-fid), or pick another --backbone.") from None
        return FeatureExtractor(TF_INCEPTION, _Pool2048(network), _uint8_299, 299, "downloaded 2015-12-05 weights")
    path = resolve_weights_path(weights)
    state = read_state_dict(path)
    # pytorch-fid's copy predates BatchNorm's num_batches_tracked buffer; torch-fidelity's has it.
    for key in [k for k in state if k.endswith(".running_mean")]:
        state.setdefault(key.replace(".running_mean", ".num_batches_tracked"), torch.tensor(0))
    with tempfile.TemporaryDirectory() as tmp:  # torch-fidelity loads from a path only
        torch.save(state, Path(tmp) / "weights.pth")
        try:
            network = FeatureExtractorInceptionV3(TF_INCEPTION, ["2048"], feature_extractor_weights_path=str(Path(tmp) / "weights.pth"))
        except RuntimeError as exc:
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            raise FgvcError(f"{weights} is not the FID Inception-v3 state dict: {lines[1] if len(lines) > 1 else lines[0]}"
                            [:400]) from None
    return FeatureExtractor(TF_INCEPTION, _Pool2048(network), _uint8_299, 299, describe_file(path))


def extractor_for(backbone: str, weights: Optional[str] = None, size: int = 224) -> FeatureExtractor:
    """``inception_v3_tf`` (standard FID), ``inception_v3`` with a torchvision weights file, or a timm/fgvc model."""
    if backbone == TF_INCEPTION:
        return tf_inception_extractor(weights)
    if backbone == "inception_v3" and weights:
        return inception_extractor(weights)
    return timm_extractor(backbone, weights, size, pretrained=weights is None)

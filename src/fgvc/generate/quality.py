"""FID and KID of generated images against real ones, with a pluggable feature extractor.

Standard FID uses Inception-v3 features; where those weights are not on disk, any timm / fgvc
backbone can extract features instead. The extractor is part of every result's name
(``fid[resnet50]``), so such numbers are never mistaken for the standard FID.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import timm
import torch
from scipy import linalg
from torch import nn

from fgvc.data.datamodule import SeededImageDataset
from fgvc.data.images import ImageList
from fgvc.errors import FgvcError


@dataclass
class FeatureExtractor:
    name: str
    model: nn.Module
    size: int
    mean: tuple
    std: tuple

    @torch.no_grad()
    def __call__(self, images: ImageList, batch_size: int = 64) -> np.ndarray:
        from torchvision import transforms as T

        transform = T.Compose([T.Resize((self.size, self.size)), T.ToTensor(), T.Normalize(self.mean, self.std)])
        loader = torch.utils.data.DataLoader(SeededImageDataset(images, transform, 0), batch_size=batch_size)
        self.model.eval()
        return torch.cat([self.model(batch).float() for batch, _ in loader]).numpy().astype(np.float64)


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
    return FeatureExtractor(tag, model, size, tuple(cfg.get("mean", (0.485, 0.456, 0.406))),
                            tuple(cfg.get("std", (0.229, 0.224, 0.225))))


def inception_extractor(weights: str) -> FeatureExtractor:
    """torchvision's Inception-v3 (2048-d pool features, 299 px) from a local weights file, e.g. the
    ImageNet ``inception_v3_google-*.pth``. Named as such: the TF-ported weights of the original FID
    paper give slightly different numbers."""
    from torchvision.models import inception_v3

    from fgvc.models.weights import read_state_dict, resolve_weights_path

    model = inception_v3(weights=None, aux_logits=False, init_weights=False)
    state = {k: v for k, v in read_state_dict(resolve_weights_path(weights)).items() if not k.startswith("AuxLogits")}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # same names, other shapes
        raise FgvcError(f"{weights} is not an Inception-v3 state dict: {str(exc).splitlines()[-1].strip()}") from None
    if missing or unexpected:
        raise FgvcError(f"{weights} is not an Inception-v3 state dict (missing {missing[:3]}, unexpected {unexpected[:3]})")
    model.fc = nn.Identity()
    return FeatureExtractor("inception_v3 (torchvision weights)", model, 299, (0.485, 0.456, 0.406),
                            (0.229, 0.224, 0.225))


def extractor_for(backbone: str, weights: Optional[str] = None, size: int = 224) -> FeatureExtractor:
    """Inception-v3 when ``backbone`` is inception_v3 and its weights are on disk, else a timm/fgvc model."""
    if backbone == "inception_v3" and weights:
        return inception_extractor(weights)
    return timm_extractor(backbone, weights, size, pretrained=weights is None)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) between two feature sets."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root, _ = linalg.sqrtm(cov_a @ cov_b, disp=False)
    if not np.isfinite(root).all():  # near-singular product: regularise as the reference implementation does
        offset = np.eye(cov_a.shape[0]) * 1e-6
        root = linalg.sqrtm((cov_a + offset) @ (cov_b + offset))
    root = root.real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(root))


def kernel_distance(a: np.ndarray, b: np.ndarray, subsets: int = 10, subset_size: int = 100, seed: int = 0) -> float:
    """KID: unbiased MMD^2 with the cubic polynomial kernel (x.y / d + 1)^3, averaged over subsets."""
    rng = np.random.default_rng(seed)
    size = min(subset_size, len(a), len(b))
    if size < 2:
        raise FgvcError("KID needs at least 2 images on each side")
    d = a.shape[1]
    values = []
    for _ in range(subsets):
        x = a[rng.choice(len(a), size, replace=False)]
        y = b[rng.choice(len(b), size, replace=False)]
        kxx, kyy, kxy = (x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3
        m = size
        values.append((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                      - 2 * kxy.mean())
    return float(np.mean(values))


def quality(real: ImageList, fake: ImageList, extractor: FeatureExtractor, per_class: bool = True) -> dict:
    """FID and KID overall and per class (classes with at least 2 images on both sides)."""
    real_features, fake_features = extractor(real), extractor(fake)
    tag = extractor.name
    result = {"extractor": tag, f"fid[{tag}]": frechet_distance(real_features, fake_features),
              f"kid[{tag}]": kernel_distance(real_features, fake_features), "per_class": {}}
    if per_class:
        for index, name in enumerate(real.class_names):
            r, f = real_features[real.labels == index], fake_features[fake.labels == index]
            if len(r) >= 2 and len(f) >= 2:
                result["per_class"][name] = {f"fid[{tag}]": frechet_distance(r, f),
                                             f"kid[{tag}]": kernel_distance(r, f)}
    return result

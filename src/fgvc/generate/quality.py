"""FID and KID of generated images against real ones, from the features of an extractor
(:mod:`fgvc.generate.extractors`). The extractor is part of every result's name
(``fid[inception_v3_tf]``, ``fid[resnet50]``), so numbers from other networks are never mistaken for
the standard FID.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg

from fgvc.data.images import ImageList
from fgvc.errors import FgvcError
from fgvc.generate.extractors import FeatureExtractor


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


def kernel_distance(a: np.ndarray, b: np.ndarray, subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> float:
    """KID: unbiased MMD^2 with the cubic polynomial kernel (x.y / d + 1)^3, averaged over subsets
    (100 of 1,000 images by default, as torch-fidelity and torchmetrics; smaller sets use all images)."""
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
    result = {"extractor": tag, "weights": extractor.weights, f"fid[{tag}]": frechet_distance(real_features, fake_features),
              f"kid[{tag}]": kernel_distance(real_features, fake_features), "per_class": {}}
    if per_class:
        for index, name in enumerate(real.class_names):
            r, f = real_features[real.labels == index], fake_features[fake.labels == index]
            if len(r) >= 2 and len(f) >= 2:
                result["per_class"][name] = {f"fid[{tag}]": frechet_distance(r, f),
                                             f"kid[{tag}]": kernel_distance(r, f)}
    return result

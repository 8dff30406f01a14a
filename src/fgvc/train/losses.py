"""Losses: cross-entropy, label smoothing, focal, soft-target CE (mixup/cutmix), ordinal soft labels,
class-balanced weights, and the Pairwise Confusion term that any of them can carry.

Every loss takes integer targets or soft (probability) targets, so mixup and cutmix work with all.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fgvc.config import LossConfig


def balanced_class_weights(class_counts: np.ndarray) -> torch.Tensor:
    """n / (k * count_c), as scikit-learn's ``compute_class_weight('balanced')``; absent classes get 0."""
    counts = np.asarray(class_counts, dtype=np.float64)
    present = counts > 0
    weights = np.zeros_like(counts)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return torch.tensor(weights, dtype=torch.float32)


def class_weights(class_counts: np.ndarray, kind: str) -> Optional[torch.Tensor]:
    """Per-class loss weights: ``balanced`` (n / (k * count)), ``sqrt`` (its square root: a milder
    correction that trades less top-1 for macro recall), or None for ``none``."""
    if kind == "none":
        return None
    weights = balanced_class_weights(class_counts)
    return weights.sqrt() if kind == "sqrt" else weights


def _soft(target: torch.Tensor, num_classes: int, smoothing: float) -> torch.Tensor:
    if target.dtype.is_floating_point:
        return target
    one_hot = F.one_hot(target, num_classes).float()
    return one_hot * (1 - smoothing) + smoothing / num_classes if smoothing else one_hot


class CrossEntropy(nn.Module):
    """Cross-entropy with optional label smoothing and class weights, for hard or soft targets."""

    def __init__(self, smoothing: float = 0.0, weight: Optional[torch.Tensor] = None):
        super().__init__()
        self.smoothing = smoothing
        self.register_buffer("weight", weight if weight is not None else None, persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if not target.dtype.is_floating_point:
            return F.cross_entropy(logits, target, weight=self.weight, label_smoothing=self.smoothing)
        log_probs = F.log_softmax(logits.float(), dim=-1)
        per_class = -target * log_probs
        if self.weight is not None:
            per_class = per_class * self.weight
        return per_class.sum(-1).mean()


class FocalLoss(nn.Module):
    """Softmax focal loss: sum_c -alpha_c * y_c * (1 - p_c)^gamma * log p_c (Lin et al., multi-class form).

    ``alpha`` is a scalar factor; class weights (``loss.class_weights: balanced``) give per-class alpha.
    """

    def __init__(self, gamma: float = 2.0, alpha: Optional[float] = None, smoothing: float = 0.0,
                 weight: Optional[torch.Tensor] = None):
        super().__init__()
        self.gamma, self.alpha, self.smoothing = gamma, alpha, smoothing
        self.register_buffer("weight", weight if weight is not None else None, persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_probs = F.log_softmax(logits.float(), dim=-1)
        soft = _soft(target, logits.shape[-1], self.smoothing)
        per_class = -soft * (1 - log_probs.exp()).pow(self.gamma) * log_probs
        if self.weight is not None:
            per_class = per_class * self.weight
        if self.alpha is not None:
            per_class = per_class * self.alpha
        return per_class.sum(-1).mean()


def ordinal_targets(num_classes: int, scale: float) -> torch.Tensor:
    """Row y: the soft label of class y when classes are ordered, softmax_k(-scale * (k - y)^2)
    (SORD, Diaz & Marathe 2019): a near miss (grade 1 for 2) costs less than a far one (0 for 3)."""
    k = torch.arange(num_classes, dtype=torch.float32)
    return torch.softmax(-scale * (k[None, :] - k[:, None]) ** 2, dim=1)


class OrdinalCrossEntropy(CrossEntropy):
    """Cross-entropy against ordinal soft labels; soft (mixup) targets are mapped through the same rows."""

    def __init__(self, num_classes: int, scale: float, weight: Optional[torch.Tensor] = None):
        super().__init__(weight=weight)
        self.register_buffer("rows", ordinal_targets(num_classes, scale), persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return super().forward(logits, _soft(target, logits.shape[-1], 0.0) @ self.rows)


def pairwise_confusion(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Pairwise Confusion (Dubey et al. ECCV 2018): the batch's first half is paired with its second
    half, and each pair of *different* classes costs the Euclidean distance between the two predicted
    distributions (the authors' code: the norm, summed, over the batch size). Pulling the
    predictions of look-alike classes together keeps the network from over-fitting to the few
    details that separate training images. An odd last image is left out."""
    half = len(logits) // 2
    if half == 0:
        return logits.sum() * 0.0
    probs = logits.float().softmax(-1)
    left, right = probs[:half], probs[half:2 * half]
    labels = targets.argmax(-1) if targets.dtype.is_floating_point else targets
    different = (labels[:half] != labels[half:2 * half]).float()
    return (torch.linalg.vector_norm(left - right, dim=1) * different).sum() / (2 * half)


def build_loss(cfg: LossConfig, class_counts: np.ndarray) -> nn.Module:
    """The configured loss; ``soft_target`` is plain CE on mixup's soft labels."""
    weight = class_weights(class_counts, cfg.class_weights)
    if cfg.name == "focal":
        return FocalLoss(cfg.focal_gamma, cfg.focal_alpha, weight=weight)
    if cfg.name == "ordinal":
        return OrdinalCrossEntropy(len(class_counts), cfg.ordinal_scale, weight=weight)
    smoothing = cfg.smoothing if cfg.name == "label_smoothing" else 0.0
    return CrossEntropy(smoothing=smoothing, weight=weight)

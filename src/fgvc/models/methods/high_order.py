"""High-order pooling while fine-tuning: ``bilinear`` (B-CNN, Lin et al. ICCV 2015) and ``isqrt_cov``
(iSQRT-COV, Li et al. CVPR 2018). The backbone's last feature map goes through a learned 1x1
projection (conv, BN, ReLU: iSQRT-COV's dimension reduction to 256 channels), then the second-order
pooling of :mod:`fgvc.models.second_order`, then a linear classifier. The same poolings serve the
cached-feature probe (``probe.pooling: [cov]``, :mod:`fgvc.models.pooling`).

Published: on CUB-200-2011 at 448 px, B-CNN (VGG-16) 84.1 %; iSQRT-COV ResNet-50 88.1 % (ResNet-101
88.7 %) against 84-85.6 % for a plain ResNet-50.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from fgvc.config import MethodConfig
from fgvc.models import second_order
from fgvc.models.methods.base import FineGrainedModel, feature_channels
from fgvc.registry import register_method


class SecondOrderClassifier(FineGrainedModel):
    """backbone -> 1x1 projection -> second-order pooling -> linear."""

    def __init__(self, backbone: nn.Module, num_classes: int, dim: Optional[int], pooling: str, iterations: int):
        super().__init__(backbone)
        channels = feature_channels(backbone)
        self.dim = dim or channels
        self.projection = (nn.Sequential(nn.Conv2d(channels, self.dim, 1, bias=False), nn.BatchNorm2d(self.dim),
                                         nn.ReLU(inplace=True)) if dim else nn.Identity())
        self.pooling, self.iterations = pooling, iterations
        pooled = self.dim * self.dim if pooling == "bilinear" else self.dim * (self.dim + 1) // 2
        self.classifier = nn.Linear(pooled, num_classes)
        nn.init.trunc_normal_(self.classifier.weight, std=0.01)
        nn.init.zeros_(self.classifier.bias)

    def pooled(self, images: torch.Tensor) -> torch.Tensor:
        maps = self.projection(self.feature_map(images, f"{self.pooling} pools"))
        if self.pooling == "bilinear":
            return second_order.bilinear(maps)
        return second_order.isqrt_cov(maps, self.iterations)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pooled(images).to(self.classifier.weight.dtype))


@register_method("bilinear", settings="high_order", needs="cnn", paper="Lin et al. 2015, B-CNN")
def bilinear(model: nn.Module, num_classes: int, cfg: MethodConfig) -> nn.Module:
    """bilinear pooling of the last feature map (signed square root, L2)"""
    return SecondOrderClassifier(model, num_classes, cfg.high_order.dim, "bilinear", cfg.high_order.iterations)


@register_method("isqrt_cov", settings="high_order", needs="cnn", paper="Li et al. 2018, iSQRT-COV")
def isqrt_cov(model: nn.Module, num_classes: int, cfg: MethodConfig) -> nn.Module:
    """covariance pooling normalised by its matrix square root (Newton-Schulz)"""
    return SecondOrderClassifier(model, num_classes, cfg.high_order.dim, "isqrt_cov", cfg.high_order.iterations)

"""Features from more than the last layer: the last N stages of a CNN, each pooled by average and/or
maximum, concatenated, with one classifier on top.

A thin crack covers a few pixels of a solar cell: average pooling of the last layer dilutes it,
maximum pooling keeps it, and earlier stages still see it at a finer scale. The probe engine
(``probe.layers``, ``probe.pooling``) trains a head on these features; as the wrapper is an ordinary
module, eval / predict / ensemble use the run like any other.

Second-order poolings (``bilinear``, ``cov``) keep products of channels; ``probe.projection`` first
projects each map onto a fixed random subspace so C*C stays small.

A pooling is one function NCHW -> NC registered with ``@register_pooling(name)``; ``probe.pooling``
accepts exactly the registered names.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

from fgvc.errors import ConfigError
from fgvc.models import second_order
from fgvc.registry import POOLINGS, register_pooling


MAX_POOLED = 200_000  # features per image above which a head (and the feature cache) would not fit


@register_pooling("avg")
def average(feature_map: torch.Tensor) -> torch.Tensor:
    """the mean over the map"""
    return feature_map.mean((2, 3))


@register_pooling("max")
def maximum(feature_map: torch.Tensor) -> torch.Tensor:
    """the largest value over the map (keeps small strong details)"""
    return feature_map.amax((2, 3))


@register_pooling("bilinear")
def bilinear(feature_map: torch.Tensor) -> torch.Tensor:
    """mean outer product of the channels, signed square root, L2 (C*C values: project first)"""
    return second_order.bilinear(feature_map)


@register_pooling("cov")
def covariance(feature_map: torch.Tensor) -> torch.Tensor:
    """covariance of the channels, matrix square root by Newton-Schulz (iSQRT-COV; C(C+1)/2 values)"""
    return second_order.isqrt_cov(feature_map)


def _pool(feature_map: torch.Tensor, pooling: Sequence[str]) -> torch.Tensor:
    return torch.cat([POOLINGS.get(p)(feature_map) for p in pooling], dim=1)


class PooledLayersClassifier(nn.Module):
    """``backbone``'s last ``layers`` feature maps: the ends of the stages before the last, then the final
    map (the last stage's, after the head convolution where the model has one, as EfficientNet does),
    each pooled by every method of ``pooling``, concatenated, then ``classifier``."""

    fgvc_classifier = "classifier"

    def __init__(self, backbone: nn.Module, num_classes: int, layers: int = 1, pooling: Sequence[str] = ("avg",),
                 projection: Optional[int] = None):
        super().__init__()
        name = getattr(backbone, "default_cfg", {}).get("architecture", type(backbone).__name__)
        if layers > 1 and not hasattr(backbone, "forward_intermediates"):
            raise ConfigError(f"probe.layers: {layers} needs a timm model with forward_intermediates; "
                              f"{name} has none; use probe.layers: 1")
        self.backbone, self.layers, self.pooling = backbone, layers, tuple(pooling)
        self.pretrained_cfg = getattr(backbone, "pretrained_cfg", {})
        with torch.no_grad():
            was_training = backbone.training
            size = self.pretrained_cfg.get("input_size", (3, 64, 64))[-1]
            probe = torch.zeros(1, 3, min(size, 64), min(size, 64))
            self.projections = nn.ParameterList(
                [nn.Parameter(fixed_projection(m.shape[1], projection), requires_grad=False)
                 for m in self.feature_maps(probe)] if projection else [])
            dim = self.features(probe).shape[1]
            backbone.train(was_training)
        if dim > MAX_POOLED:
            raise ConfigError(f"probe.pooling {list(self.pooling)} on {name} gives {dim:,} features per image; set "
                              f"probe.projection (e.g. 96) to project each map to fewer channels first")
        self.classifier = nn.Linear(dim, num_classes)

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.layers == 1:
            maps = [self.backbone.forward_features(x)]
        else:
            final, stage_ends = self.backbone.forward_intermediates(x, indices=self.layers)
            maps = [*stage_ends[:-1], final]  # the final map (after a head conv, if any) stands for the last stage
        if any(m.ndim != 4 for m in maps):
            raise ConfigError("probe.pooling / probe.layers pool NCHW feature maps of a CNN; this model "
                              "returns tokens; use the default probe (probe.layers: 1, probe.pooling: [avg])")
        return maps

    def features(self, x: torch.Tensor) -> torch.Tensor:
        maps = self.feature_maps(x)
        if len(self.projections):
            maps = [torch.einsum("bchw,dc->bdhw", m, p) for m, p in zip(maps, self.projections)]
        return torch.cat([_pool(m, self.pooling) for m in maps], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def fixed_projection(channels: int, size: int) -> torch.Tensor:
    """(min(size, channels), channels): orthonormal rows drawn with a fixed seed, the same in every run
    (so cached features are shared): a map's channels projected onto a random subspace keep their
    covariance structure approximately, at a fraction of the size of second-order pooling."""
    size = min(size, channels)
    generator = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(channels, size, generator=generator))
    return q.T.contiguous()


def pool_layers(model: nn.Module, num_classes: int, layers: int, pooling: Sequence[str],
                projection: Optional[int] = None) -> nn.Module:
    """The wrapper around ``model`` (the config has checked that ``pooling`` names registered poolings)."""
    if not hasattr(model, "forward_features") or not hasattr(model, "reset_classifier"):
        raise ConfigError(f"probe.pooling / probe.layers need a timm model; {type(model).__name__} is not one")
    model.reset_classifier(0)  # the wrapper has its own classifier
    return PooledLayersClassifier(model, num_classes, layers, pooling, projection)

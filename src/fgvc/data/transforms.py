"""Train and eval pipelines from the config, built with timm's ``create_transform``.

Normalisation (mean/std) and interpolation default to the model's pretrained config, because a
checkpoint only works with the statistics it was trained with (EfficientNet-Lite0 expects
mean = std = 0.5; ImageNet statistics make its predictions clearly worse).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cached_property
from typing import Callable

from PIL import Image
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, create_transform
from timm.models import get_pretrained_cfg
from torchvision import transforms as T

from fgvc.config import AUTO_AUGMENT_ALIASES, ExperimentConfig, ModelConfig, TransformConfig


@dataclass(frozen=True)
class Normalization:
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str
    source: str  # where the numbers came from, for the user


def resolve_normalization(tcfg: TransformConfig, model: ModelConfig) -> Normalization:
    """mean/std/interpolation: the config's if set, else the timm model's pretrained config, else ImageNet."""
    pretrained = get_pretrained_cfg(model.name) if model.source == "timm" else None
    mean = tcfg.mean or (tuple(pretrained.mean) if pretrained else IMAGENET_DEFAULT_MEAN)
    std = tcfg.std or (tuple(pretrained.std) if pretrained else IMAGENET_DEFAULT_STD)
    interpolation = tcfg.interpolation or (pretrained.interpolation if pretrained else "") or "bilinear"
    if tcfg.mean and tcfg.std:
        source = "config"
    elif pretrained:
        source = f"timm pretrained config of {model.name}"
    else:
        source = "ImageNet defaults"
    return Normalization(tuple(mean), tuple(std), interpolation, source)


class RandomRot90:
    """With probability ``p``, rotate a PIL image by 90, 180 or 270 degrees (drawn from python's
    ``random``, which the data loader seeds per sample). With horizontal and vertical flips at 0.5
    this draws from the whole symmetry group D4 of a square, e.g. a solar cell with no up or down."""

    def __init__(self, p: float):
        self.p = p

    def __call__(self, image):
        if self.p <= 0 or random.random() >= self.p:
            return image
        turns = (Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_270)
        return image.transpose(turns[random.randrange(3)])

    def __repr__(self) -> str:
        return f"RandomRot90(p={self.p})"


def build_transform(tcfg: TransformConfig, norm: Normalization, train: bool, uint8: bool = False) -> Callable:
    """A torchvision transform: PIL image -> normalised tensor of size ``tcfg.crop``.

    ``uint8``: stop at a uint8 CHW tensor (timm's prefetcher layout); normalisation and random erasing
    are then the batch's job (:class:`fgvc.data.batches.BatchPreparation`)."""
    if not train:
        # crop_pct so that timm resizes the short side to exactly `resize` (floor(crop / pct) == resize).
        return create_transform(
            tcfg.crop,
            is_training=False,
            crop_pct=tcfg.crop / (tcfg.resize + 0.5),
            crop_mode="center",
            interpolation=norm.interpolation if norm.interpolation != "random" else "bilinear",
            mean=norm.mean,
            std=norm.std,
            use_prefetcher=uint8,
        )
    policy = AUTO_AUGMENT_ALIASES.get(tcfg.auto_augment, tcfg.auto_augment) if tcfg.auto_augment else None
    trivial = policy == "trivialaugment"
    primary, secondary, final = create_transform(
        tcfg.crop,
        is_training=True,
        train_crop_mode=tcfg.train_crop_mode,
        scale=tuple(tcfg.scale),
        ratio=tuple(tcfg.ratio),
        hflip=tcfg.hflip,
        vflip=tcfg.vflip,
        color_jitter=tcfg.color_jitter if tcfg.color_jitter > 0 else None,
        auto_augment=None if trivial else policy,
        interpolation=norm.interpolation,
        mean=norm.mean,
        std=norm.std,
        re_prob=tcfg.re_prob,
        re_mode=tcfg.re_mode,
        re_count=tcfg.re_count,
        use_prefetcher=uint8,
        separate=True,
    )
    # timm has no TrivialAugment; torchvision's TrivialAugmentWide slots in where timm puts its policies.
    middle = [T.TrivialAugmentWide()] if trivial else list(secondary.transforms)
    rotate = [RandomRot90(tcfg.rot90)] if tcfg.rot90 > 0 else []
    return T.Compose(list(primary.transforms) + rotate + middle + list(final.transforms))


class Transforms:
    """A config's normalisation, resolved once, and its train and eval pipelines (built when first used)."""

    def __init__(self, tcfg: TransformConfig, norm: Normalization, uint8: bool = False):
        self.tcfg, self.norm, self.uint8 = tcfg, norm, uint8

    @cached_property
    def train(self) -> Callable:
        return build_transform(self.tcfg, self.norm, train=True, uint8=self.uint8)

    @cached_property
    def eval(self) -> Callable:
        return build_transform(self.tcfg, self.norm, train=False, uint8=self.uint8)


def transforms_for(cfg: ExperimentConfig, uint8: bool = False) -> Transforms:
    """The one place a config's normalisation and transforms are resolved (``uint8``: stop at uint8
    tensors, normalised where the model runs; see :func:`build_transform`)."""
    return Transforms(cfg.data.transforms, resolve_normalization(cfg.data.transforms, cfg.model), uint8)

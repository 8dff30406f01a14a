"""uint8 batches in flight: data-loader workers send images as uint8 (a quarter of float32's bytes
between processes), and the batch is normalised, and randomly erased, where the model runs (on the
GPU when there is one), as timm's loader and prefetcher do.

Normalisation repeats torchvision's ``ToTensor`` + ``Normalize`` operation for operation (float, / 255,
- mean, / std), so a batch is bit-for-bit the one the workers would have sent as float32.
"""

from __future__ import annotations

import random
import torch
from timm.data.random_erasing import RandomErasing

from fgvc.config import TransformConfig
from fgvc.data.transforms import Normalization


class BatchPreparation:
    """Normalises uint8 batches on their device; erases boxes in training batches (timm's RandomErasing)."""

    def __init__(self, norm: Normalization, tcfg: TransformConfig):
        self.mean = torch.tensor(norm.mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(norm.std, dtype=torch.float32).view(1, -1, 1, 1)
        self.re_prob, self.re_mode, self.re_count = tcfg.re_prob, tcfg.re_mode, tcfg.re_count
        self._on: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """A uint8 NCHW batch as normalised float32 on its device; a float batch is returned as it is."""
        if images.dtype != torch.uint8:
            return images
        if images.device not in self._on:
            self._on[images.device] = (self.mean.to(images.device), self.std.to(images.device))
        mean, std = self._on[images.device]
        return images.to(torch.float32).div(255).sub_(mean).div_(std)

    @property
    def erases(self) -> bool:
        return self.re_prob > 0

    def erase(self, images: torch.Tensor, seed: int) -> torch.Tensor:
        """Random erasing of a normalised batch, drawn from ``seed`` alone (the caller derives it from
        seed, epoch, batch and rank, so a resumed run erases the same boxes); the global RNGs that
        dropout and the rest use are left as they were."""
        if not self.erases:
            return images
        devices = [images.device] if images.device.type == "cuda" else []
        state = random.getstate()
        try:
            with torch.random.fork_rng(devices=devices):
                random.seed(seed)
                torch.default_generator.manual_seed(seed)
                if devices:
                    torch.cuda.manual_seed(seed)
                eraser = RandomErasing(probability=self.re_prob, mode=self.re_mode, max_count=self.re_count,
                                       device=images.device)
                return eraser(images)
        finally:
            random.setstate(state)


"""The Tip-Adapter engine's section (Zhang et al., ECCV 2022): a cache of the k-shot training images'
CLIP features beside the zero-shot head, its weight (alpha) and sharpness (beta) chosen on val, and
Tip-Adapter-F's fine-tuning of the cache keys. The CLIP model and prompts are the ``zero_shot`` section's."""

from __future__ import annotations

from pydantic import Field

from fgvc.config.section import Section


class TipAdapterConfig(Section):
    """train.engine: tip_adapter: zero-shot CLIP plus a key-value cache of the training images' features."""

    alpha: float = Field(1.0, ge=0, description="weight of the cache logits beside the zero-shot logits (the "
                                                "paper's residual ratio); the value used when search is off, and "
                                                "Tip-Adapter-F's while its keys train")
    beta: float = Field(1.0, gt=0, description="sharpness of the cache: exp(-beta * (1 - cosine similarity))")
    search: bool = Field(True, description="choose alpha and beta on the val split's top-1 from the grid below "
                                           "(as the paper does); false: use alpha and beta as given")
    alpha_max: float = Field(3.0, gt=0.1, description="search: alpha from 0.1 up to this (the paper: 3 on "
                                                      "ImageNet, 30 on FGVC Aircraft)")
    beta_max: float = Field(7.0, gt=0.1, description="search: beta from 0.1 up to this (the paper: 7 on ImageNet, "
                                                     "30 on FGVC Aircraft)")
    alpha_steps: int = Field(20, ge=1, description="search: how many alphas (evenly spaced)")
    beta_steps: int = Field(200, ge=1, description="search: how many betas (evenly spaced)")
    views: int = Field(10, ge=0, description="augmented views (data.transforms' training augmentation) per "
                                             "training image: its cache key is their mean feature (the paper: 10); "
                                             "0: the plain view")
    finetune_epochs: int = Field(0, ge=0, description="0: Tip-Adapter (training-free); N: Tip-Adapter-F, the "
                                                      "cache keys trained N epochs on the training features "
                                                      "(the paper: 20), the epoch with the best val top-1 kept")
    finetune_lr: float = Field(0.001, gt=0, description="Tip-Adapter-F: AdamW learning rate (cosine to 0)")
    finetune_batch_size: int = Field(256, ge=1, description="Tip-Adapter-F: training images per step")

    def alpha_grid(self) -> list[float]:
        """The alphas the search tries: alpha_steps values from 0.1 up to (not including) alpha_max."""
        return _grid(self.alpha_max, self.alpha_steps)

    def beta_grid(self) -> list[float]:
        return _grid(self.beta_max, self.beta_steps)


def _grid(top: float, steps: int) -> list[float]:
    # the authors' grid: i * (top - 0.1) / steps + 0.1 for i < steps
    return [0.1 + i * (top - 0.1) / steps for i in range(steps)]

"""Class activation maps through the ``grad-cam`` library, with the target layer (and, for ViTs, the
token-to-grid reshape) chosen per architecture."""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import torch
from torch import nn

from fgvc.errors import FgvcError
from fgvc.models.methods.base import backbone_of

METHODS = ("gradcam", "gradcam++", "scorecam")


def is_vit(model: nn.Module) -> bool:
    return hasattr(model, "blocks") and hasattr(model, "patch_embed")


def target_layer(model: nn.Module) -> nn.Module:
    """The layer whose activations the CAM weighs: a ViT's last block's first norm (tokens still
    spatial), a CNN's last feature stage (timm's feature_info), else the last Conv2d's module."""
    if is_vit(model):
        return model.blocks[-1].norm1
    info = getattr(model, "feature_info", None)
    if info:
        last = info[-1]["module"] if isinstance(info, list) else info.module_name()[-1]
        return model.get_submodule(last)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise FgvcError(f"no convolution in {type(model).__name__} to take a CAM from")
    return convs[-1]


def vit_reshape(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """(B, prefix + H*W, C) tokens -> (B, C, H, W) maps, dropping class/register tokens."""
    prefix = getattr(model, "num_prefix_tokens", 1)

    def reshape(tokens: torch.Tensor) -> torch.Tensor:
        patches = tokens[:, prefix:, :]
        side = int(round(patches.shape[1] ** 0.5))
        return patches.reshape(tokens.shape[0], side, side, tokens.shape[2]).permute(0, 3, 1, 2)

    return reshape


def class_activation_maps(model: nn.Module, images: torch.Tensor, method: str = "gradcam",
                          classes: Optional[list[int]] = None) -> np.ndarray:
    """(B, H, W) maps in [0, 1] at the input resolution for ``classes`` (default: the predicted ones)."""
    from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, ScoreCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    kinds = {"gradcam": GradCAM, "gradcam++": GradCAMPlusPlus, "scorecam": ScoreCAM}
    if method not in kinds:
        raise FgvcError(f"unknown CAM method {method!r}; choose from {list(kinds)}")
    targets = [ClassifierOutputTarget(c) for c in classes] if classes is not None else None
    backbone = backbone_of(model)  # a fine-grained method's backbone holds the layer; the method gives the score
    reshape = vit_reshape(backbone) if is_vit(backbone) else None
    model.eval()
    # The gradient must reach the target layer even when training froze it (linear probe, partial):
    # asking for the input's gradient makes every activation after it require one.
    images = images.detach().clone().requires_grad_(True)
    with kinds[method](model=model, target_layers=[target_layer(backbone)], reshape_transform=reshape) as cam:
        if method == "scorecam":
            cam.batch_size = min(32, images.shape[0] * 8)
        return cam(input_tensor=images, targets=targets)

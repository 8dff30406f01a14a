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


def is_open_clip_vit(model: nn.Module) -> bool:
    """open_clip's own ViT image tower (``conv1`` patchify, ``transformer.resblocks``)."""
    return hasattr(model, "conv1") and hasattr(getattr(model, "transformer", None), "resblocks")


def image_tower(model: nn.Module) -> nn.Module:
    """The module that holds the image's spatial activations: a CLIP classifier's ``visual`` tower (timm
    or open_clip), open_clip's timm wrapper's ``trunk`` (SigLIP and other timm towers), else the model."""
    for name in ("visual", "trunk"):
        inner = getattr(model, name, None)
        if isinstance(inner, nn.Module):
            return image_tower(inner)
    return model


def target_layer(model: nn.Module) -> nn.Module:
    """The layer whose activations the CAM weighs: a ViT's last block's first norm (tokens still
    spatial; timm's and open_clip's), a CNN's last feature stage (timm's feature_info; open_clip's
    ResNets' layer4), else the last Conv2d's module."""
    if is_vit(model):
        return model.blocks[-1].norm1
    if is_open_clip_vit(model):
        return model.transformer.resblocks[-1].ln_1
    info = getattr(model, "feature_info", None)
    if info:
        last = info[-1]["module"] if isinstance(info, list) else info.module_name()[-1]
        return model.get_submodule(last)
    if isinstance(getattr(model, "layer4", None), nn.Module):
        return model.layer4
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise FgvcError(f"no convolution in {type(model).__name__} to take a CAM from")
    return convs[-1]


def prefix_tokens(model: nn.Module) -> int:
    """Class and register tokens before the patches: timm says so; open_clip's ViT has a class token
    unless it was built without one."""
    if is_open_clip_vit(model):
        return 0 if getattr(model, "class_embedding", None) is None else 1
    return getattr(model, "num_prefix_tokens", 1)


def vit_reshape(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """(B, prefix + H*W, C) tokens -> (B, C, H, W) maps, dropping class/register tokens."""
    prefix = prefix_tokens(model)

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
    # a fine-grained method's backbone, a CLIP classifier's image tower, holds the layer; the whole model gives the score
    backbone = image_tower(backbone_of(model))
    reshape = vit_reshape(backbone) if is_vit(backbone) or is_open_clip_vit(backbone) else None
    model.eval()
    # The gradient must reach the target layer even when training froze it (linear probe, partial):
    # asking for the input's gradient makes every activation after it require one.
    images = images.detach().clone().requires_grad_(True)
    with kinds[method](model=model, target_layers=[target_layer(backbone)], reshape_transform=reshape) as cam:
        if method == "scorecam":
            cam.batch_size = min(32, images.shape[0] * 8)
        return cam(input_tensor=images, targets=targets)

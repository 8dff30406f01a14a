"""Attention maps of ViTs: last-layer class-token attention and attention rollout (Abnar & Zuidema 2020)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fgvc.errors import FgvcError
from fgvc.models.methods.base import backbone_of


@torch.no_grad()
def attention_probabilities(model: nn.Module, images: torch.Tensor) -> list[torch.Tensor]:
    """Every block's attention probabilities (B, heads, T, T).

    fgvc's ViT returns them from its explicit path; for timm ViTs the fused kernel is switched off
    for this pass and the probabilities are read where timm applies attention dropout to them.
    """
    model.eval()
    if hasattr(model, "forward_with_attention"):
        return model.forward_with_attention(images)[1]
    blocks = getattr(backbone_of(model), "blocks", None)  # a fine-grained method's ViT runs inside it
    if blocks is None or not all(hasattr(b, "attn") and hasattr(b.attn, "attn_drop") for b in blocks):
        raise FgvcError(f"{type(model).__name__} is not a ViT with attention blocks; use a CAM method")
    captured: list[torch.Tensor] = []
    hooks, fused = [], []
    for block in blocks:
        fused.append(getattr(block.attn, "fused_attn", False))
        block.attn.fused_attn = False
        hooks.append(block.attn.attn_drop.register_forward_hook(lambda _m, inputs, _o: captured.append(inputs[0])))
    try:
        model(images)
    finally:
        for hook in hooks:
            hook.remove()
        for block, was in zip(blocks, fused):
            block.attn.fused_attn = was
    return captured


def _to_maps(cls_to_patches: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    side = int(round(cls_to_patches.shape[-1] ** 0.5))
    grid = cls_to_patches.reshape(-1, 1, side, side)
    maps = F.interpolate(grid, size=size, mode="bilinear", align_corners=False)[:, 0]
    low = maps.flatten(1).min(1).values[:, None, None]
    high = maps.flatten(1).max(1).values[:, None, None]
    return ((maps - low) / (high - low).clamp_min(1e-12)).numpy()


def last_layer_attention(model: nn.Module, images: torch.Tensor) -> np.ndarray:
    """(B, H, W): how much the class token attends to each patch in the last block (mean over heads)."""
    probs = attention_probabilities(model, images)[-1].mean(1)  # (B, T, T)
    prefix = getattr(backbone_of(model), "num_prefix_tokens", 1)
    return _to_maps(probs[:, 0, prefix:], tuple(images.shape[-2:]))


def attention_rollout(model: nn.Module, images: torch.Tensor, discard_ratio: float = 0.0) -> np.ndarray:
    """(B, H, W): attention rolled out through all blocks: prod_l normalise(mean_heads(A_l) + I)."""
    layers = attention_probabilities(model, images)
    prefix = getattr(backbone_of(model), "num_prefix_tokens", 1)
    tokens = layers[0].shape[-1]
    rollout = torch.eye(tokens).expand(images.shape[0], tokens, tokens)
    for probs in layers:
        attention = probs.mean(1)
        if discard_ratio:
            flat = attention.flatten(1)
            cut = flat.quantile(discard_ratio, dim=1, keepdim=True)
            attention = torch.where(attention < cut.view(-1, 1, 1), torch.zeros_like(attention), attention)
        attention = attention + torch.eye(tokens)  # the residual connection
        attention = attention / attention.sum(-1, keepdim=True)
        rollout = attention @ rollout
    return _to_maps(rollout[:, 0, prefix:], tuple(images.shape[-2:]))

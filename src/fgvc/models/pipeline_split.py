"""A network as a sequence of pieces at block boundaries (stem, each block, head), the unit a
pipeline's stages are cut from: composed in order the pieces compute exactly the whole model.

Each piece shares its parameters with the model and *owns* the ones it uses (for memory accounting
and for a stage's optimizer); its forward runs one step of the model's own forward path. Families:
timm ResNet, EfficientNet, ConvNeXt and VisionTransformer, and fgvc's ViT.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from fgvc.errors import ConfigError


class Piece(nn.Module):
    """One step of ``model``'s forward path: ``fn(model, x)``, owning ``modules`` and ``params``."""

    def __init__(self, name: str, model: nn.Module, fn: Callable[[nn.Module, torch.Tensor], torch.Tensor],
                 modules: Sequence[nn.Module] = (), params: Sequence[nn.Parameter] = ()):
        super().__init__()
        self.name = name
        self.owned = nn.ModuleList([m for m in modules if m is not None])
        self.own_params = nn.ParameterList([p for p in params if isinstance(p, nn.Parameter)])
        object.__setattr__(self, "_model", model)  # not a submodule: a piece owns only its own weights
        object.__setattr__(self, "_fn", fn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fn(self._model, x)

    def extra_repr(self) -> str:
        return self.name


def _block(name: str, model: nn.Module, block: nn.Module) -> Piece:
    return Piece(name, model, lambda _m, x: block(x), [block])


def _blocks(model: nn.Module, prefix: str, container) -> list[Piece]:
    return [_block(f"{prefix}.{i}", model, b) for i, b in enumerate(container)]


def _resnet(m) -> list[Piece]:
    pieces = [Piece("stem", m, lambda m, x: m.maxpool(m.act1(m.bn1(m.conv1(x)))), [m.conv1, m.bn1, m.act1, m.maxpool])]
    for layer in ("layer1", "layer2", "layer3", "layer4"):
        pieces += _blocks(m, layer, getattr(m, layer))
    return pieces + [Piece("head", m, lambda m, x: m.forward_head(x), [m.global_pool, m.fc])]


def _efficientnet(m) -> list[Piece]:
    pieces = [Piece("stem", m, lambda m, x: m.bn1(m.conv_stem(x)), [m.conv_stem, m.bn1])]
    for i, stage in enumerate(m.blocks):
        pieces += _blocks(m, f"blocks.{i}", stage)
    return pieces + [Piece("head", m, lambda m, x: m.forward_head(m.bn2(m.conv_head(x))),
                           [m.conv_head, m.bn2, m.global_pool, m.classifier])]


def _convnext(m) -> list[Piece]:
    pieces = [_block("stem", m, m.stem)]
    for i, stage in enumerate(m.stages):
        if not isinstance(stage.downsample, nn.Identity):
            pieces.append(_block(f"stages.{i}.downsample", m, stage.downsample))
        pieces += _blocks(m, f"stages.{i}.blocks", stage.blocks)
    return pieces + [Piece("head", m, lambda m, x: m.forward_head(m.norm_pre(x)), [m.norm_pre, m.head])]


def _timm_vit(m) -> list[Piece]:
    stem = Piece("stem", m, lambda m, x: m.norm_pre(m.patch_drop(m._pos_embed(m.patch_embed(x)))),
                 [m.patch_embed, m.pos_drop, m.patch_drop, m.norm_pre],
                 [getattr(m, "cls_token", None), getattr(m, "reg_token", None), getattr(m, "pos_embed", None)])
    head = Piece("head", m, lambda m, x: m.forward_head(m.norm(x)),
                 [m.norm, getattr(m, "attn_pool", None), m.fc_norm, m.head_drop, m.head])
    return [stem, *_blocks(m, "blocks", m.blocks), head]


def _fgvc_vit(m) -> list[Piece]:
    stem = Piece("stem", m, lambda m, x: m._tokens(x), [m.patch_embed, m.pos_drop], [m.cls_token, m.pos_embed])
    head = Piece("head", m, lambda m, x: m.forward_head(m.norm(x)), [m.norm, m.head])
    return [stem, *_blocks(m, "blocks", m.blocks), head]


def _family(model: nn.Module):
    from timm.models.convnext import ConvNeXt
    from timm.models.efficientnet import EfficientNet
    from timm.models.resnet import ResNet
    from timm.models.vision_transformer import VisionTransformer as TimmViT

    from fgvc.models.vit import VisionTransformer as FgvcViT

    for kind, split in ((ResNet, _resnet), (EfficientNet, _efficientnet), (ConvNeXt, _convnext),
                        (TimmViT, _timm_vit), (FgvcViT, _fgvc_vit)):
        if isinstance(model, kind):
            return split
    return None


def split_into_pieces(model: nn.Module) -> list[Piece]:
    """The model's forward path as pieces (stem, every block, head); ConfigError for other networks."""
    split = _family(model)
    if split is None:
        raise ConfigError(f"a pipeline cannot split {type(model).__name__}: fgvc cuts timm ResNets, EfficientNets, "
                          "ConvNeXts and ViTs and its own ViT (with their own classifier; no model.head_hidden)")
    if getattr(model, "grad_checkpointing", False):
        raise ConfigError("a pipeline cannot split a model with gradient checkpointing on")
    return split(model)


def equal_cuts(count: int, stages: int) -> list[int]:
    """Cut points (indices where stages 2..N start) giving each stage the same number of pieces (+-1)."""
    if stages < 1 or stages > count:
        raise ConfigError(f"{stages} pipeline stages for a model of {count} blocks (stem, blocks, head): "
                          f"use 1 to {count} stages")
    return [round(count * k / stages) for k in range(1, stages)]


def build_stages(pieces: Sequence[Piece], cuts: Sequence[int]) -> list[nn.Sequential]:
    """The pieces cut before each index in ``cuts`` (ascending, 0 < cut < len)."""
    bounds = [0, *cuts, len(pieces)]
    if any(b >= a for a, b in zip(bounds[1:], bounds)) or bounds[-2] >= len(pieces):
        raise ConfigError(f"pipeline cut points {list(cuts)} must rise strictly inside 1..{len(pieces) - 1}")
    return [nn.Sequential(*pieces[a:b]) for a, b in zip(bounds, bounds[1:])]

"""``method.name: plain``: the backbone with its new head and nothing else (the baseline)."""

from __future__ import annotations

from torch import nn

from fgvc.config import MethodConfig
from fgvc.registry import register_method


@register_method("plain", needs="any")
def plain(model: nn.Module, num_classes: int, cfg: MethodConfig) -> nn.Module:
    """the backbone and a new head, as a fine-tune without a method"""
    return model

"""Memory layout for inference: convolutional networks run faster in channels_last (NHWC) on CPUs
with oneDNN and on GPUs with tensor cores (bench/inference.py: 1.6x for EfficientNet-Lite0 on the
2-core CPU); a ViT, almost all matrix products, gains nothing."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Optional

import torch
from torch import nn


def prefers_channels_last(model: nn.Module) -> bool:
    """True when most of the network's weights are in 2-D convolutions."""
    conv = sum(p.numel() for m in model.modules() if isinstance(m, nn.Conv2d) for p in m.parameters(recurse=False))
    total = sum(p.numel() for p in model.parameters())
    return total > 0 and conv / total > 0.5


@contextmanager
def inference_layout(model: nn.Module, channels_last: Optional[bool] = None) -> Iterator[bool]:
    """Within the block the model's weights are channels_last when ``channels_last`` (None: when the
    network prefers it); yields whether inputs should be converted too. The weights are back in the
    default layout afterwards (checkpoints and safetensors want contiguous tensors)."""
    use = prefers_channels_last(model) if channels_last is None else channels_last
    if not use or not isinstance(model, nn.Module):  # e.g. an ONNX Runtime session has its own layout
        yield False
        return
    model.to(memory_format=torch.channels_last)
    try:
        yield True
    finally:
        model.to(memory_format=torch.contiguous_format)


def to_layout(batch: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return batch.contiguous(memory_format=torch.channels_last) if channels_last and batch.ndim == 4 else batch

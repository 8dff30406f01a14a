"""What a model costs under a strategy: parameters (total / trainable / frozen) and memory.

Parameter, gradient and optimizer-state memory follow from the counts; activation memory is measured:
one forward/backward at the configured batch and resolution, summing the bytes of the tensors autograd
saves for backward (the activations training must keep), device independent. On a GPU the peak
allocated memory of the same step is reported too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

import torch
from torch import nn

from fgvc.models.strategies import count_parameters

# optimizer state tensors per trainable parameter
OPTIMIZER_SLOTS = {"sgd": 1, "momentum": 1, "adam": 2, "adamw": 2, "nadam": 2, "radam": 2, "lamb": 2, "adan": 3,
                   "rmsprop": 1, "adagrad": 1, "lion": 1}


@dataclass
class ModelSummary:
    name: str
    strategy: str
    total_params: int
    trainable_params: int
    frozen_params: int
    param_bytes: int
    grad_bytes: int
    optimizer_bytes: int
    activation_bytes: Optional[int] = None
    peak_cuda_bytes: Optional[int] = None
    batch_size: int = 0
    image_size: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def _saved_tensor_bytes(model: nn.Module, images: torch.Tensor) -> int:
    seen: dict[int, int] = {}
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}

    def pack(tensor: torch.Tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in weights:  # weights saved for backward are not activations
            seen[storage.data_ptr()] = storage.nbytes()  # count shared storage once
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        output = model(images)
    output.float().sum().backward()
    return sum(seen.values())


def summarize(model: nn.Module, name: str, strategy: str, optimizer: str = "adamw", batch_size: int = 0,
              image_size: int = 224, device: Optional[torch.device] = None) -> ModelSummary:
    """Counts and memory; ``batch_size`` > 0 also measures activations with one forward/backward."""
    total, trainable = count_parameters(model)
    element = next(model.parameters()).element_size()
    trainable_bytes = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    slots = OPTIMIZER_SLOTS.get(optimizer.lower(), 2)
    summary = ModelSummary(
        name=name, strategy=strategy, total_params=total, trainable_params=trainable, frozen_params=total - trainable,
        param_bytes=total * element, grad_bytes=trainable_bytes, optimizer_bytes=slots * trainable_bytes,
        batch_size=batch_size, image_size=image_size,
    )
    if batch_size > 0:
        device = device or torch.device("cpu")
        model = model.to(device).train()
        images = torch.randn(batch_size, 3, image_size, image_size, device=device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        summary.activation_bytes = _saved_tensor_bytes(model, images)
        if device.type == "cuda":
            summary.peak_cuda_bytes = int(torch.cuda.max_memory_allocated(device))
        model.zero_grad(set_to_none=True)
    return summary


def human_bytes(count: Optional[int]) -> str:
    if count is None:
        return "-"
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"

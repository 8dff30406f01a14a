"""Write a model as ONNX (dynamic batch, metadata inside) or TorchScript (metadata in a JSON beside)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fgvc.errors import FgvcError
from fgvc.export.metadata import write_sidecar
from fgvc.models.onnx_runtime import OPSET, export_module_onnx

FORMATS = ("onnx", "torchscript")
__all__ = ["FORMATS", "OPSET", "example_input", "export_onnx", "export_torchscript"]


def example_input(metadata: dict[str, Any], batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, *metadata["input_size"])


def export_onnx(model: nn.Module, path: Path, metadata: dict[str, Any]) -> Path:
    """torch.onnx (the torch.export-based exporter), batch dimension dynamic, metadata as metadata_props."""
    import onnx

    refusal = getattr(model, "onnx_refusal", None)  # a fine-grained method that cannot be traced says why
    if refusal:
        raise FgvcError(f"cannot export {metadata['model']} to ONNX: {refusal}")
    try:
        export_module_onnx(model, path, tuple(metadata["input_size"]), metadata["model"])
    except FgvcError as exc:
        raise FgvcError(f"{exc}; try --format torchscript") from None
    proto = onnx.load(str(path))
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=json.dumps(value))
    onnx.save(proto, str(path))
    return path


def export_torchscript(model: nn.Module, path: Path, metadata: dict[str, Any]) -> Path:
    """torch.jit.trace (shapes are static per call, the batch is free), metadata in PATH.json."""
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, example_input(metadata), check_trace=False)
    traced.save(str(path))
    write_sidecar(path, metadata)
    return path

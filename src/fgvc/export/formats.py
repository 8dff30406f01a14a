"""Write a model as ONNX (dynamic batch, metadata inside) or TorchScript (metadata in a JSON beside)."""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fgvc.errors import FgvcError
from fgvc.export.metadata import write_sidecar

FORMATS = ("onnx", "torchscript")
OPSET = 18


def example_input(metadata: dict[str, Any], batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, *metadata["input_size"])


def export_onnx(model: nn.Module, path: Path, metadata: dict[str, Any]) -> Path:
    """torch.onnx (the torch.export-based exporter), batch dimension dynamic, metadata as metadata_props."""
    import onnx

    example = example_input(metadata)
    batch = torch.export.Dim("batch", min=1, max=4096)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            program = torch.onnx.export(model, (example,), input_names=["images"], output_names=["logits"],
                                        dynamic_shapes=({0: batch},), opset_version=OPSET, dynamo=True,
                                        verbose=False)
        except Exception as exc:  # noqa: BLE001 - the exporter's errors are long; say which model failed
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise FgvcError(f"ONNX export of {metadata['model']} failed: {first}; try --format torchscript") from None
    program.save(str(path))
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

"""A network as ONNX, run by ONNX Runtime on the CPU: the torch.export-based exporter with a dynamic
batch dimension, and a session that looks like a module. ``fgvc export`` adds metadata around the
first; ``predict --engine onnx`` and the feature cache's backbone pass use the second."""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import nn

from fgvc.errors import FgvcError

OPSET = 18


def export_module_onnx(model: nn.Module, path: Path, input_size: tuple[int, int, int], name: str = "the model",
                       output_name: str = "logits") -> Path:
    """``model`` (eval mode) as an ONNX file whose batch dimension is free; FgvcError naming ``name``
    when the exporter fails."""
    example = torch.randn(2, *input_size)
    batch = torch.export.Dim("batch", min=1, max=4096)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            program = torch.onnx.export(model, (example,), input_names=["images"], output_names=[output_name],
                                        dynamic_shapes=({0: batch},), opset_version=OPSET, dynamo=True,
                                        verbose=False)
        except Exception as exc:  # noqa: BLE001 - the exporter's errors are long; say which model failed
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise FgvcError(f"ONNX export of {name} failed: {first}") from None
    program.save(str(path))
    return Path(path)


class OnnxRuntimeModel(nn.Module):
    """An ONNX Runtime session that looks like a module: predict, eval and ensembles take it as is."""

    def __init__(self, path: Path, threads: Optional[int] = None):
        super().__init__()
        try:
            import onnxruntime as ort
        except ImportError:
            raise FgvcError("--engine onnx needs ONNX Runtime: pip install onnxruntime") from None
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads() or (os.cpu_count() or 1)
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - a truncated or foreign file
            raise FgvcError(f"{path} is not a readable ONNX model ({str(exc).splitlines()[0][:200]}); "
                            "export it again with fgvc export") from None
        self.path = Path(path)
        self.input_name = self.session.get_inputs()[0].name

    def static_shapes(self) -> dict:
        """What the graph itself fixes: ``input_size`` [C, H, W] and the number of outputs as
        ``class_names`` placeholders, where the dimensions are numbers (not symbolic)."""
        shapes: dict = {}
        size = self.session.get_inputs()[0].shape[1:]
        if size and all(isinstance(d, int) for d in size):
            shapes["input_size"] = list(size)
        outputs = self.session.get_outputs()[0].shape
        if outputs and isinstance(outputs[-1], int):
            shapes["num_classes"] = outputs[-1]
        return shapes

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(images.detach().to("cpu", torch.float32).numpy())
        return torch.from_numpy(self.session.run(None, {self.input_name: array})[0])

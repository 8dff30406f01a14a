"""Inference engines behind one interface: a module that maps a normalised NCHW batch to logits.
``torch`` is the run's own model; ``onnx`` runs an exported file in ONNX Runtime (CPU)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import nn

from fgvc.errors import FgvcError

ENGINES = ("torch", "onnx")


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

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(images.detach().to("cpu", torch.float32).numpy())
        return torch.from_numpy(self.session.run(None, {self.input_name: array})[0])

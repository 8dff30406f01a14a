"""Inference engines behind one interface: a module that maps a normalised NCHW batch to logits.
``torch`` is the run's own model; ``onnx`` runs an exported file in ONNX Runtime (CPU; the session
lives in ``models.onnx_runtime``, which the feature cache shares)."""

from __future__ import annotations

from fgvc.models.onnx_runtime import OnnxRuntimeModel

ENGINES = ("torch", "onnx")
__all__ = ["ENGINES", "OnnxRuntimeModel"]

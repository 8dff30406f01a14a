"""What a user needs beside an exported model to feed it: classes, input size, mean/std, interpolation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import fgvc
from fgvc.api import TrainedRun


def model_metadata(run: TrainedRun) -> dict[str, Any]:
    t = run.cfg.data.transforms
    return {
        "fgvc_version": getattr(fgvc, "__version__", "unknown"),
        "run": str(run.run_dir),
        "model": run.cfg.model.name,
        "class_names": list(run.class_names),
        "num_classes": len(run.class_names),
        "input_size": [3, t.crop, t.crop],
        "resize": t.resize,
        "mean": list(run.norm.mean),
        "std": list(run.norm.std),
        "interpolation": run.norm.interpolation,
        "input": "float32 NCHW, RGB scaled to [0, 1], then (x - mean) / std; resize the short side to "
                 "`resize`, centre-crop `input_size`",
        "output": "logits, one per class in class_names order (softmax for probabilities)",
    }


def write_sidecar(model_file: Path, metadata: dict[str, Any]) -> Path:
    """model.pt -> model.json beside it."""
    path = Path(model_file).with_suffix(".json")
    path.write_text(json.dumps(metadata, indent=2))
    return path


def read_metadata(model_file: Path) -> dict[str, Any]:
    """The metadata of an exported file: ONNX metadata_props, or the JSON beside a TorchScript file."""
    model_file = Path(model_file)
    if model_file.suffix == ".onnx":
        import onnx

        model = onnx.load(str(model_file), load_external_data=False)
        return {p.key: json.loads(p.value) for p in model.metadata_props}
    sidecar = model_file.with_suffix(".json")
    return json.loads(sidecar.read_text()) if sidecar.is_file() else {}

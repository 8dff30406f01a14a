"""Inference engines behind one interface: a module that maps a normalised NCHW batch to logits.
``torch`` is the run's own model; ``onnx`` runs an exported file in ONNX Runtime (CPU; the session
lives in ``models.onnx_runtime``, which the feature cache shares). An exported file runs in place of
a run's model only when it classifies the same classes from the same inputs: its own metadata (class
names, input size, mean/std, interpolation; ``fgvc export`` writes them) is checked against the run,
so a file of another run can never fill a CSV with the wrong names."""

from __future__ import annotations

from pathlib import Path

from fgvc.api import TrainedRun
from fgvc.errors import FgvcError
from fgvc.export.metadata import model_metadata, read_metadata
from fgvc.models.onnx_runtime import OnnxRuntimeModel

ENGINES = ("torch", "onnx")
__all__ = ["ENGINES", "OnnxRuntimeModel", "onnx_model_for"]

# what must agree between an exported file and the run whose transform feeds it
CHECKED = ("class_names", "num_classes", "input_size", "mean", "std", "interpolation")


def onnx_model_for(run: TrainedRun, path: Path) -> OnnxRuntimeModel:
    """The ONNX file at ``path`` as a module that can stand in for ``run``'s model, or one FgvcError
    naming what differs (classes, input size, normalisation) when it was exported from another run."""
    path = Path(path)
    if not path.is_file():
        raise FgvcError(f"no ONNX model at {path}; write it with `fgvc export {run.run_dir}` (or pass --model FILE)")
    model = OnnxRuntimeModel(path)  # a truncated or foreign file is refused here
    theirs, ours = read_metadata(path), model_metadata(run)
    if not theirs:  # a file exported elsewhere: its graph's own shapes are all there is to check
        theirs = model.static_shapes()
    for key in CHECKED:
        if key in theirs and _differ(theirs[key], ours[key]):
            raise FgvcError(f"{path} does not fit the run {run.run_dir}: its {key} is {_short(theirs[key])}, the "
                            f"run's is {_short(ours[key])}; predict with the file exported from this run "
                            f"(`fgvc export {run.run_dir}`), or pass that file's own run")
    return model


def _differ(a, b) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) != len(b) or any(_differ(x, y) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return abs(float(a) - float(b)) > 1e-6
    return a != b


def _short(value) -> str:
    text = str(list(value)) if isinstance(value, (list, tuple)) else str(value)
    return text if len(text) <= 80 else text[:77] + "...]"

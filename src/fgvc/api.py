"""The small public API for a user of a trained run, and for the layers that use trained runs
(export, the web demo, the generators' label filter): load a finished run, predict with it, explain
it, open an image the way training does. They never reach into ``evaluate`` internals, so those can
change freely; training itself is :func:`fgvc.train.run.train`."""

from __future__ import annotations

from pathlib import Path

import torch

from fgvc.data.images import ImageList, decode_image, read_bytes
from fgvc.evaluate.predict import predict_probs
from fgvc.evaluate.runs import TrainedRun, load_trained
from fgvc.runfolder import RunFolder

__all__ = ["RunFolder", "TrainedRun", "explain", "load_run", "open_image", "plain_model", "predict"]


def load_run(run_dir: Path | str, checkpoint: str = RunFolder.BEST) -> TrainedRun:
    """A finished run's model (CPU, eval mode) with its config, class names and transforms."""
    return load_trained(Path(run_dir), checkpoint)


def plain_model(run: TrainedRun) -> torch.nn.Module:
    """The run's network as plain layers (LoRA adapters merged into the weights), in eval mode: what
    an export writes."""
    from fgvc.models.strategies import merge_lora

    return merge_lora(run.model).eval()


def predict(run: TrainedRun, images: ImageList, batch_size: int | None = None) -> torch.Tensor:
    """Class probabilities (N x C) of ``images`` under the run's eval transform."""
    return predict_probs(run.model, images, run.eval_transform, batch_size or run.cfg.eval.batch_size)


def open_image(path: Path | str):
    """An image file decoded to RGB the way training reads it; a corrupt or missing file is a DataError
    naming it."""
    return decode_image(read_bytes(Path(path)), str(path))


def explain(run: TrainedRun, pictures: list, method: str | None = None):
    """What the model looks at in decoded RGB pictures: (method used, probabilities N x C, the model's
    view of each picture, the heat map over it), views and overlays as uint8 HxWx3 arrays. ``method``
    None: attention maps for a ViT, Grad-CAM otherwise."""
    from fgvc.explain.run_explain import choose_method, explain_pictures

    method = choose_method(run, method)
    return (method, *explain_pictures(run, pictures, method))

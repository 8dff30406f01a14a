"""Use a finished run folder: rebuild its model from config.yaml + checkpoint, evaluate splits, predict folders."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from torch import nn

from fgvc.config import ExperimentConfig, load_config
from fgvc.data import DataSplits, load_data
from fgvc.data.images import UNLABELLED, ImageList, list_image_files
from fgvc.data.transforms import Normalization, build_transform, resolve_normalization
from fgvc.errors import FgvcError
from fgvc.evaluate.metrics import compute_metrics
from fgvc.evaluate.predict import predict_probs, write_predictions_csv
from fgvc.models.factory import create_model
from fgvc.models.heads import classifier_name, replace_classifier
from fgvc.models.strategies import apply_strategy


@dataclass
class TrainedRun:
    run_dir: Path
    cfg: ExperimentConfig
    model: nn.Module
    class_names: list[str]
    norm: Normalization

    @property
    def eval_transform(self):
        return build_transform(self.cfg.data.transforms, self.norm, train=False)

    def tta_transform(self, tta) -> object:
        """The eval transform, or five crops per image when ``crops`` is among the TTA views."""
        if "crops" not in tta:
            return self.eval_transform
        from fgvc.evaluate.predict import FiveCropViews

        t = self.cfg.data.transforms
        interpolation = self.norm.interpolation if self.norm.interpolation != "random" else "bilinear"
        return FiveCropViews(t.resize, t.crop, self.norm.mean, self.norm.std, interpolation)


def build_network(cfg: ExperimentConfig, num_classes: int, pretrained: bool = True):
    """The model of ``cfg`` with its strategy applied (LoRA wraps it); (model, weights report)."""
    model_cfg = cfg.model if pretrained else cfg.model.model_copy(update={"pretrained": False, "pretrained_file": None})
    model, report = create_model(model_cfg, num_classes)
    if cfg.strategy.name == "features" and cfg.strategy.probe_head == "mlp":
        replace_classifier(model, num_classes, hidden=[cfg.strategy.probe_hidden])
    return apply_strategy(model, cfg.strategy), report


def checkpoint_state(path: Path) -> dict[str, torch.Tensor]:
    """The model tensors of a Lightning checkpoint (names without the module's ``model.`` prefix)."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    return {k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items() if k.startswith("model.")}


def load_trained(run_dir: Path, checkpoint: str = "best") -> TrainedRun:
    """The trained model of a run folder, on the CPU, in eval mode."""
    run_dir = Path(run_dir)
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise FgvcError(f"{run_dir} is not a run folder (no config.yaml); pass the folder `fgvc train` wrote")
    cfg = load_config(config_path)
    classes_path = run_dir / "classes.json"
    class_names = json.loads(classes_path.read_text()) if classes_path.is_file() else None
    if class_names is None:
        class_names = load_data(cfg.data).class_names
    probe_head = run_dir / "checkpoints" / "probe_head.pt"
    if cfg.strategy.name == "features" and probe_head.is_file():
        return _load_probe(run_dir, cfg, class_names, probe_head)
    ckpt = run_dir / "checkpoints" / f"{checkpoint}.ckpt"
    if not ckpt.is_file():
        ckpt = run_dir / "checkpoints" / "last.ckpt"
    if not ckpt.is_file():
        raise FgvcError(f"{run_dir}: no checkpoint in {run_dir / 'checkpoints'}; did training finish an epoch?")
    model, _ = build_network(cfg, len(class_names), pretrained=False)
    state = checkpoint_state(ckpt)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise FgvcError(f"{ckpt} does not fit the model of {config_path}: missing {missing[:5]}, unexpected {unexpected[:5]}")
    model.eval()
    return TrainedRun(run_dir, cfg, model, class_names, resolve_normalization(cfg.data.transforms, cfg.model))


def _load_probe(run_dir: Path, cfg: ExperimentConfig, class_names: list[str], head_file: Path) -> TrainedRun:
    """A cached-feature probe run: the frozen backbone rebuilt from its weights, the trained head on it."""
    torch.manual_seed(cfg.seed)  # a probe on a random backbone used the init of this seed
    model, _ = build_network(cfg, len(class_names), pretrained=True)
    head = model.get_submodule(classifier_name(model))
    head.load_state_dict(torch.load(head_file, map_location="cpu", weights_only=True))
    model.eval()
    return TrainedRun(run_dir, cfg, model, class_names, resolve_normalization(cfg.data.transforms, cfg.model))


def evaluate_split(run: TrainedRun, split: str = "test", write: bool = True,
                   device: Optional[torch.device] = None, splits: Optional[DataSplits] = None) -> dict[str, Any]:
    """Metrics of the run's model on one split of its data set; writes metrics_<split>.json and predictions.
    ``splits``: the run's data when the caller has it loaded already (else it is loaded here)."""
    splits = splits or load_data(run.cfg.data)
    images = getattr(splits, split, None)
    if images is None or not len(images):
        raise FgvcError(f"the data set has no {split!r} split; splits here: {[n for n, _ in splits.named()]}")
    if not images.is_labelled:
        raise FgvcError(f"split {split!r} is unlabelled; use `fgvc predict` for it")
    probs = predict_probs(run.model.to(device or "cpu"), images, run.tta_transform(run.cfg.eval.tta),
                          run.cfg.eval.batch_size, num_workers=run.cfg.data.num_workers, tta=run.cfg.eval.tta)
    metrics = compute_metrics(probs, torch.as_tensor(images.labels), run.class_names)
    if write:
        (run.run_dir / f"metrics_{split}.json").write_text(json.dumps(metrics, indent=2))
        write_predictions_csv(run.run_dir / f"predictions_{split}.csv", images, probs)
    return metrics


def images_in_folder(folder: Path, class_names: list[str]) -> ImageList:
    """The images directly in ``folder`` (natural order), unlabelled, with their file stems as ids."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FgvcError(f"image folder not found: {folder}")
    files = list_image_files(folder)
    if not files:
        raise FgvcError(f"no images (.jpg, .png, ...) directly in {folder}")
    return ImageList(class_names, np.full(len(files), UNLABELLED), paths=files,
                     meta={"id": np.array([p.stem for p in files])}, name=str(folder))

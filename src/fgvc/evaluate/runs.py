"""Use a finished run folder: rebuild its model from config.yaml + checkpoint, evaluate splits, predict folders."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
from torch import nn

from fgvc.config import ExperimentConfig, load_config
from fgvc.data import DataSplits, load_data
from fgvc.data.images import UNLABELLED, ImageList, list_image_files
from fgvc.data.readable import as_trained
from fgvc.data.transforms import Normalization, Transforms, transforms_for
from fgvc.errors import CheckpointError, FgvcError
from fgvc.evaluate.metrics import compute_metrics
from fgvc.evaluate.predict import predict_probs, write_predictions_csv
from fgvc.models.assembly import build_network
from fgvc.models.clip_probe import probe_network
from fgvc.models.clip_towers import load_zero_shot
from fgvc.models.heads import classifier_name
from fgvc.models.strategies import merge_lora
from fgvc.models.tip_adapter import load_tip_adapter
from fgvc.runfolder import RunFolder
from fgvc.trust import read_checkpoint


@dataclass
class TrainedRun:
    run_dir: Path
    cfg: ExperimentConfig
    model: nn.Module
    class_names: list[str]
    transforms: Transforms
    checkpoint: str = RunFolder.BEST  # the checkpoint its weights come from (best, or last)

    @property
    def norm(self) -> Normalization:
        return self.transforms.norm

    @property
    def eval_transform(self):
        return self.transforms.eval

    def tta_transform(self, tta) -> object:
        """The eval transform, or five crops per image when ``crops`` is among the TTA views."""
        if "crops" not in tta:
            return self.eval_transform
        from fgvc.evaluate.predict import FiveCropViews

        t = self.cfg.data.transforms
        interpolation = self.norm.interpolation if self.norm.interpolation != "random" else "bilinear"
        return FiveCropViews(t.resize, t.crop, self.norm.mean, self.norm.std, interpolation)


def load_trained(run_dir: Path, checkpoint: str = RunFolder.BEST, weights_file: bool = True) -> TrainedRun:
    """The trained model of a run folder, on the CPU, in eval mode.

    The best checkpoint's weights come from ``checkpoints/model.safetensors`` where it exists (plain
    tensors: nothing in it can run code), else from ``best.ckpt``; ``weights_file=False`` reads the
    checkpoint always (the shared finish, which writes the safetensors file from it)."""
    folder = RunFolder(run_dir).require()
    cfg = load_config(folder.config_file)
    class_names = folder.class_names()
    if class_names is None:
        class_names = load_data(cfg.data).class_names
    if folder.probe_head_file.is_file():  # the probe engine saves its head alone
        return _load_probe(folder, cfg, class_names)
    if folder.zero_shot_head_file.is_file():  # the zero-shot engine: its text head, the tower rebuilt
        model, cfg = load_zero_shot(cfg, folder.zero_shot_head_file, len(class_names))
        return TrainedRun(folder.path, cfg, model, class_names, transforms_for(cfg))
    if folder.tip_adapter_file.is_file():  # Tip-Adapter: text head and cache, the tower rebuilt
        model, cfg = load_tip_adapter(cfg, folder.tip_adapter_file, len(class_names))
        return TrainedRun(folder.path, cfg, model, class_names, transforms_for(cfg))
    if checkpoint == RunFolder.BEST and weights_file and folder.weights_file.is_file():
        return TrainedRun(folder.path, cfg, _load_weights_file(folder, cfg, len(class_names)), class_names,
                          transforms_for(cfg))
    ckpt = folder.checkpoint(checkpoint)
    if not ckpt.is_file():
        ckpt = folder.last_checkpoint
    if not ckpt.is_file():
        raise FgvcError(f"{folder.path}: no checkpoint in {folder.checkpoints}; did training finish an epoch?")
    other = RunFolder.LAST if ckpt.stem == RunFolder.BEST else RunFolder.BEST
    advice = (f"use the {other} checkpoint (`--checkpoint {other}` for fgvc eval) or train the run again"
              if folder.checkpoint(other).is_file() else "train the run again")
    model, _ = build_network(cfg, len(class_names), pretrained=False)
    checkpoint = read_checkpoint(ckpt, advice)
    state = {k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items() if k.startswith("model.")}
    load_fitting(model, state, ckpt, folder, cfg, len(class_names), advice, origin=checkpoint_origin(checkpoint))
    model.eval()
    return TrainedRun(folder.path, cfg, model, class_names, transforms_for(cfg), checkpoint=ckpt.stem)


def _load_weights_file(folder: RunFolder, cfg: ExperimentConfig, num_classes: int) -> nn.Module:
    """The network of ``cfg`` with the weights of model.safetensors (the best checkpoint's, LoRA merged:
    so a LoRA network is merged before they go in)."""
    from safetensors.torch import load_file

    path = folder.weights_file
    advice = f"delete it to read {folder.checkpoint(RunFolder.BEST).name} instead, or train the run again"
    try:
        state = load_file(path)
    except Exception as exc:  # noqa: BLE001 - a truncated header or not a safetensors file: unusable
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"weights file {path} is unreadable ({reason}); {advice}") from None
    model = merge_lora(build_network(cfg, num_classes, pretrained=False)[0])
    load_fitting(model, state, path, folder, cfg, num_classes, advice)
    return model.eval()


def load_fitting(model: nn.Module, state: dict[str, torch.Tensor], path: Path, folder: RunFolder,
                 cfg: ExperimentConfig, num_classes: int, advice: str, origin: Optional[RunFolder] = None) -> None:
    """``state`` into ``model``, or one line when it is another network's or has another class count:
    the file, what it holds (its classes; its model when the run it came from can be found) and what
    the run expects (instead of torch's line per mismatched tensor)."""
    check_fitting(model, state, path, folder, cfg, num_classes, advice, origin)
    model.load_state_dict(state)


def check_fitting(model: nn.Module, state: dict[str, torch.Tensor], path: Path, folder: RunFolder,
                  cfg: ExperimentConfig, num_classes: int, advice: str, origin: Optional[RunFolder] = None) -> None:
    """Nothing when ``state`` fits ``model`` (same tensor names and shapes), else :func:`load_fitting`'s
    one line; ``model`` is left as it was."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    reshaped = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if not (missing or unexpected or reshaped):
        return
    head = f"{classifier_name(model)}.weight"
    held_classes = _classes_held(state, head)
    held = f"{held_classes} classes" if held_classes else "no classifier fgvc can find"
    source = _origin_model(origin, folder)
    if source:
        held = f"{source}, {held}"
    if missing or unexpected:
        differs = (f"another network ({len(missing)} of the model's {len(expected)} tensors missing, "
                   f"{len(unexpected)} unknown, e.g. {(missing or unexpected)[0]!r})")
    else:
        differs = f"{len(reshaped)} tensor{'s' if len(reshaped) > 1 else ''} of another shape, e.g. {reshaped[0]} " \
                  f"{list(state[reshaped[0]].shape)} where the model has {list(expected[reshaped[0]].shape)}"
    raise CheckpointError(f"{path} holds {held} but {folder.path} expects {cfg.model.name} with {num_classes} classes "
                          f"({folder.CONFIG}, {folder.CLASSES}): {differs}; {advice}")


def _classes_held(state: dict[str, torch.Tensor], head: str) -> Optional[int]:
    """The class count of a weights dict: its classifier's rows (the model's classifier name, else the
    last matrix in it, where timm's and fgvc's networks keep their classifiers)."""
    if head in state and state[head].ndim == 2:
        return int(state[head].shape[0])
    matrices = [v for k, v in state.items() if k.endswith(".weight") and v.ndim == 2]
    return int(matrices[-1].shape[0]) if matrices else None


def checkpoint_origin(checkpoint: dict[str, Any]) -> Optional[RunFolder]:
    """The run folder a Lightning checkpoint was written in (its ModelCheckpoint's folder), if it says."""
    for key, value in (checkpoint.get("callbacks") or {}).items():
        if str(key).startswith("ModelCheckpoint") and isinstance(value, dict) and value.get("dirpath"):
            return RunFolder(Path(value["dirpath"]).parent)
    return None


def _origin_model(origin: Optional[RunFolder], folder: RunFolder) -> Optional[str]:
    """``resnet10t from runs/b``: the model the checkpoint's own run folder was configured with."""
    if origin is None or origin.path.resolve() == folder.path.resolve() or not origin.config_file.is_file():
        return None
    import yaml

    try:
        name = (yaml.safe_load(origin.config_file.read_text()) or {}).get("model", {}).get("name")
    except (OSError, yaml.YAMLError, AttributeError):
        return None
    return f"{name} from {origin.path}" if name else None


def _load_probe(folder: RunFolder, cfg: ExperimentConfig, class_names: list[str]) -> TrainedRun:
    """A cached-feature probe run: the frozen backbone rebuilt from its weights (a CLIP tower with its
    preprocessing for probe.features: clip), the trained head on it."""
    model, cfg, _ = probe_network(cfg, len(class_names))
    head = model.get_submodule(classifier_name(model))
    try:
        state = torch.load(folder.probe_head_file, map_location="cpu", weights_only=True)
        head.load_state_dict(state)
    except Exception as exc:  # noqa: BLE001 - truncated, foreign or mismatched: all unusable
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FgvcError(f"probe head {folder.probe_head_file} is unreadable ({reason}); train the run again") from None
    model.eval()
    return TrainedRun(folder.path, cfg, model, class_names, transforms_for(cfg))


def evaluate_split(run: TrainedRun, split: str = "test", write: bool = True,
                   device: Optional[torch.device] = None, splits: Optional[DataSplits] = None) -> dict[str, Any]:
    """Metrics of the run's model on one split of its data set; writes metrics_<split>.json and predictions.
    ``splits``: the run's data when the caller has it loaded already (else it is loaded here)."""
    splits = splits or as_trained(load_data(run.cfg.data), run.cfg.data)
    images = getattr(splits, split, None)
    if images is None or not len(images):
        raise FgvcError(f"the data set has no {split!r} split; splits here: {[n for n, _ in splits.named()]}")
    if not images.is_labelled:
        raise FgvcError(f"split {split!r} is unlabelled; use `fgvc predict` for it")
    probs = predict_probs(run.model.to(device or "cpu"), images, run.tta_transform(run.cfg.eval.tta),
                          run.cfg.eval.batch_size, num_workers=run.cfg.data.num_workers, tta=run.cfg.eval.tta)
    metrics = compute_metrics(probs, torch.as_tensor(images.labels), run.class_names, run.cfg.eval.top_k)
    if write:
        folder = RunFolder(run.run_dir)
        # what made predictions_<split>.csv, so an ensemble with the same checkpoint and TTA reads it
        folder.write_metrics({**metrics, RunFolder.PREDICTED_WITH: {"checkpoint": run.checkpoint,
                                                                     "tta": list(run.cfg.eval.tta)}}, split)
        write_predictions_csv(folder.predictions_file(split), images, probs)
    return metrics


ID_STYLES = ("stem", "name", "path")  # 0 (the file stem), 0.jpg (its name), images/0.jpg (folder/name)


def images_to_predict(paths: list[Path], class_names: list[str], ids: str = "stem",
                      log: Callable[[str], None] = lambda _: None) -> ImageList:
    """Images to classify: each path a folder (the images directly in it) or one image file; unlabelled,
    in the order given (a folder's in natural order). ``ids``: each image's id is its file stem, its
    file name, or ``folder/name`` (Kaggle's classify-leaves ids: ``images/0.jpg``). What a folder
    holds besides images (sub-folders, other files) and ids that repeat are said through ``log``."""
    from fgvc.data.images import IMAGE_EXTENSIONS

    if ids not in ID_STYLES:
        raise FgvcError(f"--ids {ids!r}: use {', '.join(ID_STYLES)}")
    files: list[Path] = []
    path_ids: list[str] = []  # folder/name, for ids="path"
    for path in map(Path, paths):
        if path.is_dir():
            found = list_image_files(path)
            if not found:
                raise FgvcError(f"no images (.jpg, .png, ...) directly in {path}")
            listed = set(found)
            skipped = sorted(p.name for p in path.iterdir() if p not in listed)
            if skipped:
                folders = sum((path / name).is_dir() for name in skipped)
                log(f"{path}: skipped {folders} sub-folder(s) and {len(skipped) - folders} other file(s) "
                    f"({', '.join(skipped[:3])}{', ...' if len(skipped) > 3 else ''}): predict reads the images "
                    "directly in a folder; give a sub-folder as an argument of its own")
            files += found
            path_ids += [f"{path.name}/{p.name}" for p in found]
        elif path.is_file():
            if path.suffix.lower() not in IMAGE_EXTENSIONS:
                raise FgvcError(f"{path} is not an image file ({', '.join(sorted(IMAGE_EXTENSIONS))})")
            files.append(path)
            path_ids.append(str(path))
        else:
            raise FgvcError(f"image or folder not found: {path}")
    if not files:
        raise FgvcError("no images given")
    names = {"stem": [p.stem for p in files], "name": [p.name for p in files], "path": path_ids}[ids]
    repeated = sorted(n for n, count in Counter(names).items() if count > 1)
    if repeated:
        log(f"{len(repeated)} id(s) name more than one image ({', '.join(repeated[:3])}"
            f"{', ...' if len(repeated) > 3 else ''}): their rows cannot be told apart; "
            f"use --ids {'name' if ids == 'stem' else 'path'} to keep them apart")
    return ImageList(class_names, np.full(len(files), UNLABELLED), paths=files,
                     meta={"id": np.array(names)}, name=", ".join(str(p) for p in paths[:3]))


def images_in_folder(folder: Path, class_names: list[str]) -> ImageList:
    """The images directly in ``folder`` (natural order), unlabelled, with their file stems as ids."""
    if not Path(folder).is_dir():
        raise FgvcError(f"image folder not found: {folder}")
    return images_to_predict([Path(folder)], class_names)

"""Backbone features computed once and kept on disk, keyed by everything they depend on.

Plain (un-augmented) features live in a :class:`FeatureBank` per model and transform: one row per
image, keyed by the image (path + size + mtime, or its pixels' bytes), so another split, fold or
test split reuses every image it has seen, and a changed image is computed again alone. Augmented
views are seeded by (view, index in the list), so they are cached per list in a
:class:`FeatureCache`, whose key hashes the whole list too. Both keys hash the model (name, source,
weights: hub tag or file path + size + mtime), the transform and the timm/torch versions.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Callable, Optional

import timm
import torch
from torch import nn
from torch.utils.data import DataLoader

from fgvc.config import ExperimentConfig
from fgvc.data.datamodule import SeededImageDataset
from fgvc.data.images import ImageList
from fgvc.errors import FgvcError
from fgvc.locks import file_lock
from fgvc.models.heads import classifier_name
from fgvc.models.layout import inference_layout, to_layout
from fgvc.progress import track


def bank_key(cfg: ExperimentConfig, transform: Callable, weights: Optional[dict] = None) -> str:
    """The plain-feature bank of a model and transform (no images: they are keyed inside it).
    ``weights``: what the network's weights are, where not the model section's (a CLIP tower's)."""
    payload = {"weights": weights or _weights_fingerprint(cfg), "transform": repr(transform),
               "versions": [timm.__version__, torch.__version__], **_pooling(cfg)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _images_fingerprint(images: ImageList) -> str:
    digest = hashlib.sha256()
    if images.paths is not None:
        for path in images.paths:
            stat = os.stat(path)
            digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    else:
        digest.update(images.pixels.tobytes())
    if images.boxes is not None:
        digest.update(images.boxes.tobytes())
    return digest.hexdigest()


def _pooling(cfg: ExperimentConfig) -> dict:
    """Which layers and poolings the features are made of; empty for the default (older keys stay valid)."""
    p = cfg.probe
    if not p.pooled_layers:
        return {}
    return {"pooling": [p.layers, p.pooling, p.projection] if p.projection else [p.layers, p.pooling]}


def _weights_fingerprint(cfg: ExperimentConfig) -> dict:
    model = cfg.model
    info = {"name": model.name, "source": model.source, "pretrained": model.pretrained, "img_size": model.img_size,
            "hub": [model.hub_repo, model.hub_entry, model.hub_kwargs], "keep_head": model.keep_pretrained_head}
    if not model.pretrained:  # random weights: the features depend on the seed of the init
        info["init_seed"] = cfg.seed
    if model.pretrained and model.pretrained_file:
        from fgvc.models.weights import resolve_weights_path

        path = resolve_weights_path(model.pretrained_file)
        stat = path.stat()
        info["file"] = [str(path), stat.st_size, stat.st_mtime_ns]
    return info


def cache_key(cfg: ExperimentConfig, images: ImageList, transform: Callable, views: int, seed: int,
              weights: Optional[dict] = None) -> str:
    payload = {
        "weights": weights or _weights_fingerprint(cfg),
        "transform": repr(transform),
        "views": views,
        "seed": seed if views else None,
        "versions": [timm.__version__, torch.__version__],
        "images": _images_fingerprint(images),
        **_pooling(cfg),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:32]


FEATURE_ENGINES = ("auto", "torch", "onnx")
# auto uses ONNX Runtime on the CPU from this many images on: below it the export (~10 s for
# EfficientNet-Lite0) costs more than ONNX Runtime saves (bench/feature_pass.py).
ONNX_FROM_IMAGES = 256
_sessions: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()


def _weights_digest(model: nn.Module) -> float:
    with torch.no_grad():
        return float(sum(t.double().sum() for t in (*model.parameters(), *model.buffers()) if t.is_floating_point()))


def onnx_backbone(model: nn.Module, input_size: tuple[int, int, int], name: str = "the backbone") -> nn.Module:
    """The (headless) model as an ONNX Runtime session, exported once per model, input size and weights."""
    from fgvc.models.onnx_runtime import OnnxRuntimeModel, export_module_onnx

    key = (tuple(input_size), _weights_digest(model))
    sessions = _sessions.setdefault(model, {})
    if key not in sessions:
        folder = Path(tempfile.mkdtemp(prefix="fgvc-backbone-"))
        try:
            path = export_module_onnx(model, folder / "backbone.onnx", input_size, name, output_name="features")
            sessions.clear()  # only the current weights' session is kept
            sessions[key] = OnnxRuntimeModel(path)
        finally:
            shutil.rmtree(folder, ignore_errors=True)  # the session holds the graph in memory
    return sessions[key]


def _use_onnx(engine: str, device: torch.device, count: int) -> bool:
    if engine not in FEATURE_ENGINES:
        raise ValueError(f"feature engine {engine!r}: choose from {FEATURE_ENGINES}")
    if engine != "auto":
        return engine == "onnx"
    return device.type == "cpu" and count >= ONNX_FROM_IMAGES and importlib.util.find_spec("onnxruntime") is not None


@torch.no_grad()
def extract_features(model: nn.Module, images: ImageList, transform: Callable, batch_size: int,
                     num_workers: int = 0, views: int = 0, seed: int = 0, device: Optional[torch.device] = None,
                     engine: str = "auto", channels_last: Optional[bool] = None) -> torch.Tensor:
    """Inputs of the classifier for every image: (N, D), or (views, N, D) for augmented views.

    ``engine``: torch (channels_last when the network is mostly convolutions, or as ``channels_last``
    says), onnx (ONNX Runtime, CPU), or auto: onnx on the CPU for ``ONNX_FROM_IMAGES`` images or more,
    falling back to torch if the network does not export. Engines agree to float rounding."""
    device = device or next(model.parameters()).device
    name = classifier_name(model)
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    head = getattr(parent, child)
    setattr(parent, child, nn.Identity())
    model.eval()
    try:
        use_onnx = _use_onnx(engine, device, len(images) * max(1, views))
        passes = []
        with inference_layout(model, False if use_onnx else channels_last) as nhwc:
            for view in range(max(1, views)):
                dataset = SeededImageDataset(images, transform, seed=seed * 1000 + view)
                keys = [(view, i) for i in range(len(images))]
                loader = DataLoader(torch.utils.data.Subset(dataset, keys) if views else dataset,
                                    batch_size=batch_size, shuffle=False, num_workers=num_workers)
                label = f"features of {len(images)} images" + (f" (view {view + 1}/{views})" if views else "")
                rows = []
                for batch, _ in track(loader, label):
                    if use_onnx:
                        try:
                            rows.append(onnx_backbone(model, tuple(batch.shape[1:]))(batch).float())
                            continue
                        except FgvcError:
                            if engine == "onnx":
                                raise
                            use_onnx = False  # auto: this network does not export; torch it is
                    rows.append(model(to_layout(batch.to(device), nhwc)).float().cpu())
                passes.append(torch.cat(rows))
        return torch.stack(passes) if views else passes[0]
    finally:
        setattr(parent, child, head)


class FeatureCache:
    """Feature tensors on disk under ``root`` (one file per key, with a small dict of metadata);
    counts hits and misses."""

    def __init__(self, root: Path):
        self.root = Path(root).expanduser()
        self.hits = self.misses = 0

    def get_or_compute(self, key: str, compute: Callable[[], tuple[torch.Tensor, dict]]) -> tuple[torch.Tensor, dict]:
        path = self.root / f"{key}.pt"
        if path.is_file():
            try:
                stored = torch.load(path, map_location="cpu", weights_only=True)
                self.hits += 1
                return stored["features"], stored["meta"]
            except Exception:  # noqa: BLE001 - a half-written or foreign file: recompute
                path.unlink(missing_ok=True)
        self.misses += 1
        features, meta = compute()
        self.root.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".tmp")
        torch.save({"features": features, "meta": meta}, partial)
        partial.replace(path)  # atomic: a killed run never leaves a truncated cache file
        return features, meta


class FeatureBank:
    """Plain features per image under ``root``: one file per (model, transform) holding image keys,
    a feature matrix and metadata. Missing images are computed and added (under a file lock, written
    atomically); counts a request as a hit when every image was there."""

    def __init__(self, root: Path):
        self.root = Path(root).expanduser()
        self.hits = self.misses = 0

    def get_or_compute(self, key: str, images: ImageList,
                       compute: Callable[[ImageList], tuple[torch.Tensor, dict]]) -> tuple[torch.Tensor, dict]:
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / f"bank-{key}.pt"
        wanted = images.fingerprints()
        with file_lock(path.with_suffix(".lock")):  # two runs filling one bank add rows in turn
            stored = self._load(path)
            row = {k: i for i, k in enumerate(stored["keys"])}
            missing = [i for i, k in enumerate(wanted) if k not in row]
            if missing:
                self.misses += 1
                features, meta = compute(images.subset(missing))
                stored = {"keys": stored["keys"] + [wanted[i] for i in missing],
                          "features": torch.cat([stored["features"], features]) if stored["keys"] else features,
                          "meta": meta}
                partial = path.with_suffix(".tmp")
                torch.save(stored, partial)
                partial.replace(path)
                row = {k: i for i, k in enumerate(stored["keys"])}
            else:
                self.hits += 1
        return stored["features"][[row[k] for k in wanted]], stored["meta"]

    @staticmethod
    def _load(path: Path) -> dict:
        if path.is_file():
            try:
                return torch.load(path, map_location="cpu", weights_only=True)
            except Exception:  # noqa: BLE001 - a foreign or damaged file: start the bank again
                path.unlink(missing_ok=True)
        return {"keys": [], "features": torch.zeros(0), "meta": {}}

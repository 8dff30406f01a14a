"""Backbone features computed once and kept on disk, keyed by everything they depend on.

The key hashes the model (name, source, weights: hub tag or file path + size + mtime), the
transform, the number of augmented views and their seed, the timm/torch versions, and every image
(path + size + mtime, or the pixels' bytes). Change any of them and the key changes: a miss.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable, Optional

import timm
import torch
from torch import nn
from torch.utils.data import DataLoader

from fgvc.config import ExperimentConfig
from fgvc.data.datamodule import SeededImageDataset
from fgvc.data.images import ImageList
from fgvc.models.heads import classifier_name


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


def cache_key(cfg: ExperimentConfig, images: ImageList, transform: Callable, views: int, seed: int) -> str:
    payload = {
        "weights": _weights_fingerprint(cfg),
        "transform": repr(transform),
        "views": views,
        "seed": seed if views else None,
        "versions": [timm.__version__, torch.__version__],
        "images": _images_fingerprint(images),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:32]


@torch.no_grad()
def extract_features(model: nn.Module, images: ImageList, transform: Callable, batch_size: int,
                     num_workers: int = 0, views: int = 0, seed: int = 0, device: Optional[torch.device] = None
                     ) -> torch.Tensor:
    """Inputs of the classifier for every image: (N, D), or (views, N, D) for augmented views."""
    device = device or next(model.parameters()).device
    name = classifier_name(model)
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    head = getattr(parent, child)
    setattr(parent, child, nn.Identity())
    model.eval()
    try:
        passes = []
        for view in range(max(1, views)):
            dataset = SeededImageDataset(images, transform, seed=seed * 1000 + view)
            keys = [(view, i) for i in range(len(images))]
            loader = DataLoader(torch.utils.data.Subset(dataset, keys) if views else dataset, batch_size=batch_size,
                                shuffle=False, num_workers=num_workers)
            passes.append(torch.cat([model(batch.to(device)).float().cpu() for batch, _ in loader]))
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

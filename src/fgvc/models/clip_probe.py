"""The probe's frozen network (``train.engine: probe``): the model section's network, or with
``probe.features: clip`` the CLIP image tower the ``zero_shot`` section names, whose embedding is
L2-normalised before the head as CLIP's own classifier does. The probe engine and a loaded probe run
both build it here, so the network that is trained is the one that is evaluated."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fgvc.config import ExperimentConfig, ZeroShotConfig
from fgvc.models.assembly import build_network
from fgvc.models.clip_towers import ZeroShotClassifier, load_clip, with_tower_preprocessing
from fgvc.models.heads import replace_classifier


def probe_network(cfg: ExperimentConfig, num_classes: int) -> tuple[nn.Module, ExperimentConfig, Any]:
    """(network with its untrained head, ``cfg`` with the network's preprocessing, weights report).

    The model section's network is built with its pretrained weights (or the random init of ``cfg.seed``)."""
    if cfg.probe.clip_features:
        return clip_probe_network(cfg, num_classes)
    torch.manual_seed(cfg.seed)  # a probe on a random backbone uses the init of this seed
    model, report = build_network(cfg, num_classes, pretrained=True)
    return model, cfg, report


def clip_probe_network(cfg: ExperimentConfig, num_classes: int) -> tuple[nn.Module, ExperimentConfig, str]:
    """The CLIP image tower of ``cfg.zero_shot``, frozen, with a zero head on its normalised embedding
    (an MLP for ``probe.head: mlp``); ``cfg`` with the tower's own preprocessing."""
    clip = load_clip(cfg.zero_shot)
    visual = clip.model.visual
    model = ZeroShotClassifier(visual, torch.zeros(num_classes, embedding_dim(visual, clip.preprocess)))
    if cfg.probe.head == "mlp":
        replace_classifier(model, num_classes, hidden=[cfg.probe.hidden])
    for parameter in model.visual.parameters():
        parameter.requires_grad_(False)
    return model.eval(), with_tower_preprocessing(cfg, clip.preprocess), f"open_clip {clip.source}"


def embedding_dim(visual: nn.Module, preprocess: dict[str, Any]) -> int:
    """The width of an open_clip image tower's embedding (its output_dim, else one blank image's)."""
    dim = getattr(visual, "output_dim", None)
    if isinstance(dim, int):
        return dim
    size = preprocess.get("size", 224)
    size = tuple(size) if isinstance(size, (list, tuple)) else (size, size)
    with torch.no_grad():
        return int(visual(torch.zeros(1, 3, *size)).shape[-1])


def clip_fingerprint(zcfg: ZeroShotConfig) -> dict[str, Any]:
    """What a CLIP tower's features depend on, for the feature cache's key: model, tag, weights file
    (path, size, mtime) and the open_clip version."""
    try:
        version = importlib.metadata.version("open_clip_torch")
    except importlib.metadata.PackageNotFoundError:  # the tower cannot be built: load_clip says so
        version = None
    info: dict[str, Any] = {"clip": zcfg.model, "pretrained": zcfg.pretrained, "open_clip": version}
    if zcfg.pretrained_file:
        path = Path(zcfg.pretrained_file).expanduser()
        stat = path.stat()
        info["file"] = [str(path.resolve()), stat.st_size, stat.st_mtime_ns]
    return info

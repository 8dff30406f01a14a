"""Assemble the network of an experiment: backbone + head for the data set, weights, the fine-grained
method around them, transfer strategy."""

from __future__ import annotations

from typing import Optional

from torch import nn

from fgvc.config import ExperimentConfig
from fgvc.models.factory import create_model
from fgvc.models.heads import replace_classifier
from fgvc.models.methods.base import build_method
from fgvc.models.pooling import pool_layers
from fgvc.models.strategies import apply_strategy
from fgvc.models.weights import LoadReport


def build_network(cfg: ExperimentConfig, num_classes: int, pretrained: bool = True) -> tuple[nn.Module, Optional[LoadReport]]:
    """The model of ``cfg`` with its strategy applied (LoRA wraps it); (model, weights report).

    ``pretrained=False`` skips every weights download or file: for a model whose trained weights are
    loaded right after (a resumed run, a finished run being evaluated).
    """
    model_cfg = cfg.model if pretrained else cfg.model.model_copy(update={"pretrained": False, "pretrained_file": None})
    model, report = create_model(model_cfg, num_classes)
    model = build_method(cfg, model, num_classes)
    # the probe section is at its defaults unless the probe engine trains (the config refuses it otherwise)
    if cfg.probe.pooled_layers:
        model = pool_layers(model, num_classes, cfg.probe.layers, cfg.probe.pooling, cfg.probe.projection)
    if cfg.probe.head == "mlp":
        replace_classifier(model, num_classes, hidden=[cfg.probe.hidden])
    return apply_strategy(model, cfg.strategy), report

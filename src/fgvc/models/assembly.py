"""Assemble the network of an experiment: backbone + head for the data set, weights, the fine-grained
method around them, transfer strategy."""

from __future__ import annotations

from typing import Any, Optional, Sequence

from torch import nn

from fgvc.config import ExperimentConfig
from fgvc.models.factory import create_model
from fgvc.models.head_init import WeightsAndHead, init_head, wrap_clip_tower
from fgvc.models.heads import replace_classifier
from fgvc.models.methods.base import build_method
from fgvc.models.pooling import pool_layers
from fgvc.models.strategies import apply_strategy


def build_network(cfg: ExperimentConfig, num_classes: int, pretrained: bool = True,
                  class_names: Optional[Sequence[str]] = None) -> tuple[nn.Module, Any]:
    """The model of ``cfg`` with its strategy applied (LoRA wraps it); (model, weights report).

    ``pretrained=False`` skips every weights download or file: for a model whose trained weights are
    loaded right after (a resumed run, a finished run being evaluated). ``class_names``: where given,
    ``model.head_init`` starts the head (the report then also says how).
    """
    model_cfg = cfg.model if pretrained else cfg.model.model_copy(update={"pretrained": False, "pretrained_file": None})
    model, report = create_model(model_cfg, num_classes, input_size=cfg.data.transforms.crop)
    if cfg.model.head_init == "zero_shot":  # the same network with or without weights: a run loads into it
        model = wrap_clip_tower(model, num_classes)
    if pretrained and class_names is not None and cfg.model.head_init != "random":
        report = WeightsAndHead(report, init_head(model, cfg, class_names))
    model = build_method(cfg, model, num_classes)
    # the probe section is at its defaults unless the probe engine trains (the config refuses it otherwise)
    if cfg.probe.pooled_layers:
        model = pool_layers(model, num_classes, cfg.probe.layers, cfg.probe.pooling, cfg.probe.projection)
    if cfg.probe.head == "mlp":
        replace_classifier(model, num_classes, hidden=[cfg.probe.hidden])
    return apply_strategy(model, cfg.strategy), report

"""What a fine-grained method is: a module around a timm backbone whose ``forward(images)`` gives
the logits of a prediction (what eval, predict, explain, the app and export run, test-time
refinement included) and whose ``training_loss`` is the training objective (extra losses, crops,
shuffled patches). The LightningModule calls ``training_loss`` when a method has one; nothing else
in the house knows which method it trains.

Registration details (``@register_method(name, ...)``) the config reads without importing torch:
``settings`` (the sub-section of ``method`` the method reads), ``needs`` ("cnn": a feature map,
"vit": attention blocks, "any"), ``mixup`` (False where the method needs hard labels), ``paper``.
"""

from __future__ import annotations

import re
from typing import Callable, Optional

import torch
from torch import nn

from fgvc.config import ExperimentConfig
from fgvc.errors import ConfigError
from fgvc.registry import METHODS

Criterion = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class FineGrainedModel(nn.Module):
    """A method around ``backbone`` (a timm model whose classifier was removed). Subclasses add their
    modules, with the final classifier named ``classifier``, and define ``forward``."""

    fgvc_backbone = "backbone"  # strategies and layer decay find the backbone's stages under this name
    fgvc_classifier = "classifier"
    onnx_refusal: Optional[str] = None  # one line saying why the method cannot be exported, if it cannot

    def __init__(self, backbone: nn.Module):
        super().__init__()
        if not hasattr(backbone, "forward_features") or not hasattr(backbone, "reset_classifier"):
            raise ConfigError(f"method.name needs a timm model; {type(backbone).__name__} is not one")
        backbone.reset_classifier(0)
        self.backbone = backbone
        self.pretrained_cfg = getattr(backbone, "pretrained_cfg", {})
        self.default_cfg = self.pretrained_cfg

    def feature_map(self, images: torch.Tensor, purpose: str) -> torch.Tensor:
        """The backbone's last feature map (B, C, h, w); one ConfigError line for a backbone that returns
        tokens. ``purpose`` reads after "method.name", e.g. "wsdan computes attention maps"."""
        maps = self.backbone.forward_features(images)
        if maps.ndim != 4:
            raise ConfigError(f"method.name {purpose} on a CNN's feature map; this backbone returns tokens: "
                              "choose a CNN model.name")
        return maps

    def training_loss(self, images: torch.Tensor, targets: torch.Tensor, criterion: Criterion
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, logits of ``images``) for one training batch; by default the criterion on ``forward``."""
        logits = self(images)
        return criterion(logits, targets), logits

    def group_matcher(self, coarse: bool = False) -> list:
        """timm's grouping of the backbone's layers, under ``backbone.``; the method's own modules fall
        in the last group, with the classifier (they are new, as a head is)."""
        if not hasattr(self.backbone, "group_matcher"):
            return []
        compiled = []
        for ordinal, spec in enumerate(self.backbone.group_matcher(coarse).values()):
            for pattern, suffix in ([(spec, None)] if isinstance(spec, str) else spec or []):
                compiled.append((_UnderPrefix(pattern, f"{self.fgvc_backbone}."), (ordinal,), suffix))
        return compiled

    def no_weight_decay(self) -> set[str]:
        inner = getattr(self.backbone, "no_weight_decay", lambda: set())()
        return {f"{self.fgvc_backbone}.{name}" for name in inner}


class _UnderPrefix:
    """A timm group pattern matched on the part of a name after ``prefix`` (timm calls ``.match``)."""

    def __init__(self, pattern: str, prefix: str):
        self.pattern, self.prefix = re.compile(pattern), prefix

    def match(self, name: str):
        return self.pattern.match(name[len(self.prefix):]) if name.startswith(self.prefix) else None


def backbone_of(model: nn.Module) -> nn.Module:
    """The timm backbone inside a method (the model itself when it is not one): where CAMs and
    attention maps are read."""
    name = getattr(model, "fgvc_backbone", None)
    return model.get_submodule(name) if name else model


def feature_channels(backbone: nn.Module) -> int:
    """Channels of the backbone's last feature map."""
    return int(getattr(backbone, "num_features", 0)) or int(backbone.feature_info[-1]["num_chs"])


def build_method(cfg: ExperimentConfig, model: nn.Module, num_classes: int) -> nn.Module:
    """``model`` with ``cfg.method`` built around it (``plain`` returns it as it is)."""
    return METHODS.get(cfg.method.name)(model, num_classes, cfg.method)

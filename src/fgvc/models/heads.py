"""Find and replace a model's classifier head (timm names it; elsewhere it is the last Linear)."""

from __future__ import annotations

from typing import Sequence

from torch import nn


def classifier_name(model: nn.Module) -> str:
    """Dotted name of the classifier module: timm's pretrained_cfg says; else the last nn.Linear."""
    override = getattr(model, "fgvc_classifier", None)
    if override:
        return override
    cfg = getattr(model, "pretrained_cfg", None) or {}
    name = cfg.get("classifier")
    if isinstance(name, (list, tuple)):
        name = name[-1]
    if name:
        try:
            model.get_submodule(name)
            return name
        except AttributeError:
            pass
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no Linear layer to use as its classifier")
    return linears[-1]


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def mlp_head(in_features: int, num_classes: int, hidden: Sequence[int] = (), dropout: float = 0.0) -> nn.Module:
    """Linear head, or an MLP in -> hidden... -> num_classes with ReLU and dropout."""
    if not hidden:
        return nn.Linear(in_features, num_classes)
    layers: list[nn.Module] = []
    width = in_features
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU(inplace=True)]
        if dropout:
            layers.append(nn.Dropout(dropout))
        width = size
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


def replace_classifier(
    model: nn.Module, num_classes: int, hidden: Sequence[int] = (), dropout: float = 0.0, keep_existing: bool = False
) -> nn.Module:
    """Put a new head for ``num_classes`` where the classifier is.

    ``keep_existing`` keeps the (pretrained, e.g. 1000-class) classifier and stacks the new head on
    its outputs: the "1000 -> 256 -> 120" style.
    """
    name = classifier_name(model)
    old = model.get_submodule(name)
    last_linear = old if isinstance(old, nn.Linear) else [m for m in old.modules() if isinstance(m, nn.Linear)][-1]
    if keep_existing:
        new = nn.Sequential(old, nn.ReLU(inplace=False), mlp_head(last_linear.out_features, num_classes, hidden, dropout))
    elif isinstance(old, nn.Sequential) and not hidden:
        # e.g. torchvision's Sequential(Dropout, Linear): keep the rest, replace the final Linear
        index = [i for i, m in enumerate(old) if isinstance(m, nn.Linear)][-1]
        old[index] = nn.Linear(old[index].in_features, num_classes)
        new = old
    else:
        new = mlp_head(last_linear.in_features, num_classes, hidden, dropout)
    _set_submodule(model, name, new)
    model.fgvc_classifier = name
    return model


def reset_head(model: nn.Module, std: float = 0.01) -> None:
    """Small init for a new classifier: timm's EfficientNet init (uniform +-1/sqrt(num_classes)) is sized
    for 1000 classes and gives a 4-class head logits in the tens, so the first epochs only undo it."""
    for module in model.get_submodule(classifier_name(model)).modules():
        if isinstance(module, nn.Linear):
            nn.init.trunc_normal_(module.weight, std=std)
            nn.init.zeros_(module.bias)

"""Transfer strategies: which parameters train.

- ``full``: everything.
- ``linear``: the head only (BatchNorm of the frozen backbone stays in eval mode).
- ``partial``: the last ``unfreeze_last`` stages (ResNet ``layer4``, ...) or blocks (ViT) plus the head.
- ``attention``: ViT only; the self-attention layers of every block plus the head, MLPs frozen.
- ``lora``: low-rank adapters through ``peft`` on ``lora_targets`` (ViT ``qkv``), plus the head.
- ``gradual``: starts as ``linear``; :func:`unfreeze_stage_for_epoch` opens one more stage, top
  down, every ``unfreeze_every`` epochs.

Each is one function registered with ``@register_strategy(name)``: the config's ``strategy.name``
accepts exactly these. The registration's details say what the training engines need to know
(``opens_over_epochs``: the trainable set grows during training; ``pipeline``: whether the
pipeline engine can cut it into stages).

Stages come from timm's ``group_matcher`` (coarse groups: stem, stages or blocks, head).
"""

from __future__ import annotations

from typing import Iterable

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from fgvc.config import StrategyConfig
from fgvc.errors import ConfigError
from fgvc.models.heads import classifier_name
from fgvc.registry import STRATEGIES, register_strategy


def set_trainable(modules: Iterable[nn.Module], trainable: bool) -> None:
    for module in modules:
        for parameter in module.parameters():
            parameter.requires_grad_(trainable)


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(total, trainable) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable


def stage_names(model: nn.Module) -> list[list[str]]:
    """Module names of each backbone stage, input side first; the head and its group excluded.

    timm models group their modules (``group_matcher(coarse=True)``): ResNet stem/layer1..layer4,
    ViT stem/blocks.0..N. Other models fall back to their top-level children.
    """
    head = classifier_name(model)
    if hasattr(model, "group_matcher"):
        from timm.models._manipulate import group_modules

        groups = [names for _, names in sorted(group_modules(model, model.group_matcher(coarse=True)).items())]
    else:
        groups = [[name] for name, _ in model.named_children()]
    head_root = head.split(".")[0]
    return [g for g in groups if not any(n == head or n.startswith(f"{head}.") or n == head_root for n in g)]


def head_group(model: nn.Module) -> list[str]:
    """Names of the head and of modules grouped with it (e.g. a ViT's final norm; a fine-grained
    method's own modules)."""
    head = classifier_name(model)
    in_stages = {n for group in stage_names(model) for n in group}
    # top-level modules after the last stage that are not in any stage (final norm, fc_norm, head)
    extra = [n for n, _ in model.named_children() if n not in in_stages and n != head.split(".")[0]]
    late = [n for n in extra if n in ("norm", "fc_norm", "head_drop", "global_pool", "conv_head", "bn2")]
    backbone = getattr(model, "fgvc_backbone", None)
    if backbone:  # a fine-grained method: its own modules are new, as the head is
        inner = head_group(model.get_submodule(backbone))[1:]
        return [head] + [n for n in extra if n != backbone] + [f"{backbone}.{n}" for n in inner]
    return [head] + late


def _modules(model: nn.Module, names: Iterable[str]) -> list[nn.Module]:
    return [model.get_submodule(n) for n in names]


def apply_strategy(model: nn.Module, cfg: StrategyConfig) -> nn.Module:
    """Freeze/unfreeze (or wrap, for LoRA) ``model`` per the strategy; returns the model to train."""
    return STRATEGIES.get(cfg.name)(model, cfg)


def describe_strategy(cfg: StrategyConfig) -> str:
    """The strategy in words, with its settings filled in ("the head and the last 2 stages or blocks")."""
    return STRATEGIES.doc(cfg.name).format(**cfg.model_dump())


def opens_over_epochs(cfg: StrategyConfig) -> bool:
    """True for a strategy whose trainable set grows during training (its frozen parameters still
    belong in the optimizer, and :func:`unfreeze_stage_for_epoch` runs at every epoch's start)."""
    return bool(STRATEGIES.info(cfg.name).get("opens_over_epochs"))


def _head_only(model: nn.Module) -> nn.Module:
    set_trainable([model], False)
    set_trainable(_modules(model, head_group(model)), True)
    return model


@register_strategy("full", pipeline=True)
def full(model: nn.Module, cfg: StrategyConfig) -> nn.Module:
    """everything trains"""
    set_trainable([model], True)
    return model


@register_strategy("linear", pipeline=True)
def linear(model: nn.Module, cfg: StrategyConfig) -> nn.Module:
    """the head only"""
    return _head_only(model)


@register_strategy("partial", pipeline=True)
def partial(model: nn.Module, cfg: StrategyConfig) -> nn.Module:
    """the head and the last {unfreeze_last} stages or blocks"""
    stages = stage_names(model)
    if cfg.unfreeze_last > len(stages):
        raise ConfigError(f"strategy.unfreeze_last={cfg.unfreeze_last} but {type(model).__name__} has {len(stages)} stages")
    _head_only(model)
    chosen = stages[len(stages) - cfg.unfreeze_last:] if cfg.unfreeze_last else []
    set_trainable(_modules(model, [n for group in chosen for n in group]), True)
    return model


@register_strategy("attention", pipeline=True)
def attention(model: nn.Module, cfg: StrategyConfig) -> nn.Module:
    """a ViT's self-attention layers and the head"""
    layers = [m for n, m in model.named_modules() if n.endswith(".attn")]
    if not layers:
        raise ConfigError(f"strategy.name=attention needs a ViT (blocks with .attn); {type(model).__name__} has none")
    if cfg.attention_blocks:
        layers = layers[-cfg.attention_blocks:]
    _head_only(model)
    set_trainable(layers, True)
    return model


@register_strategy("lora", pipeline=False)
def lora(model: nn.Module, cfg: StrategyConfig) -> nn.Module:
    """low-rank adapters (peft) and the head"""
    return _apply_lora(model, cfg)


@register_strategy("gradual", pipeline=False, opens_over_epochs=True)
def gradual(model: nn.Module, cfg: StrategyConfig) -> nn.Module:
    """the head first, one more stage every {unfreeze_every} epochs"""
    return _head_only(model)


def _apply_lora(model: nn.Module, cfg: StrategyConfig) -> nn.Module:
    from peft import LoraConfig, get_peft_model

    targets = list(cfg.lora_targets)
    found = [n for n, m in model.named_modules() if any(n == t or n.endswith(f".{t}") for t in targets)]
    if not found:
        raise ConfigError(f"strategy.lora_targets {targets} match no module of {type(model).__name__}")
    config = LoraConfig(
        r=cfg.lora_rank,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=targets,
        modules_to_save=head_group(model),
    )
    return get_peft_model(model, config)


def merge_lora(model: nn.Module) -> nn.Module:
    """A LoRA-wrapped model with the adapters merged into plain weights (for export)."""
    return model.merge_and_unload() if hasattr(model, "merge_and_unload") else model


def unfreeze_stage_for_epoch(model: nn.Module, cfg: StrategyConfig, epoch: int) -> int:
    """Gradual unfreezing: at ``epoch``, the head plus the top ``epoch // unfreeze_every`` stages train.

    A pure function of the epoch, so a resumed run unfreezes exactly as the uninterrupted one.
    Returns the number of open stages.
    """
    stages = stage_names(model)
    opened = min(len(stages), epoch // cfg.unfreeze_every)
    set_trainable([model], False)
    set_trainable(_modules(model, head_group(model)), True)
    for group in stages[len(stages) - opened:]:
        set_trainable(_modules(model, group), True)
    return opened


def frozen_norms(model: nn.Module) -> list[nn.Module]:
    """BatchNorm layers whose parameters are all frozen: they belong in eval mode (running stats fixed)."""
    found = []
    for module in model.modules():
        if isinstance(module, _BatchNorm):
            params = list(module.parameters(recurse=False))
            if params and not any(p.requires_grad for p in params):
                found.append(module)
    return found


def set_norm_modes(model: nn.Module) -> list[nn.Module]:
    """Frozen BatchNorm layers to eval mode, trainable ones to train mode; returns the frozen ones."""
    frozen = frozen_norms(model)
    frozen_ids = {id(m) for m in frozen}
    for module in model.modules():
        if isinstance(module, _BatchNorm):
            module.train(id(module) not in frozen_ids)
    return frozen


def keep_frozen_norms_in_eval(model: nn.Module) -> None:
    """Put the frozen BatchNorm layers of ``model`` into eval mode."""
    for module in frozen_norms(model):
        module.eval()

"""Optimizers (timm's factory: sgd, adam, adamw and every timm optimizer) and schedules with warmup.

Parameter groups: no weight decay on norms, biases and timm's ``no_weight_decay()`` tensors; the
head's learning rate times ``strategy.head_lr_mult``; optional layer-wise LR decay (timm's layer map).
Each group's ``lr`` already holds its scale, so every scheduler treats groups alike.
"""

from __future__ import annotations

import warnings
from typing import Any, Optional

import torch
from timm.optim import create_optimizer_v2
from timm.scheduler import PlateauLRScheduler, create_scheduler_v2
from torch import nn

from fgvc.config import OptimConfig, ScheduleConfig, StrategyConfig
from fgvc.errors import ConfigError
from fgvc.models.heads import classifier_name



def _layer_map(model: nn.Module) -> tuple[dict[str, int], int]:
    from timm.models._manipulate import group_parameters

    if hasattr(model, "group_matcher"):
        layer_map = group_parameters(model, model.group_matcher(coarse=False), reverse=True)
    else:
        from timm.optim._param_groups import auto_group_layers

        layer_map = auto_group_layers(model)
    return layer_map, max(layer_map.values()) + 1


def build_param_groups(
    model: nn.Module, optim: OptimConfig, strategy: StrategyConfig, include_frozen: bool = False
) -> list[dict[str, Any]]:
    """Optimizer parameter groups; ``include_frozen`` also adds frozen tensors (gradual unfreezing)."""
    base = getattr(model, "get_base_model", lambda: model)()  # look through a peft wrapper
    head_prefix = f"{classifier_name(base)}."
    no_decay_names = set(getattr(base, "no_weight_decay", lambda: set())())
    layer_map, num_layers = _layer_map(base) if strategy.layer_decay else ({}, 1)
    groups: dict[tuple, dict[str, Any]] = {}
    for name, parameter in model.named_parameters():
        if not (parameter.requires_grad or include_frozen):
            continue
        bare = _bare_name(name)
        is_head = bare.startswith(head_prefix) or ".modules_to_save." in name
        no_decay = parameter.ndim <= 1 or bare in no_decay_names or bare.split(".")[-1] in no_decay_names
        scale = strategy.head_lr_mult if is_head else 1.0
        layer = layer_map.get(bare, num_layers - 1)
        if strategy.layer_decay and not is_head:
            scale *= strategy.layer_decay ** (num_layers - 1 - layer)
        key = (is_head, no_decay, round(scale, 12))
        group = groups.setdefault(key, {
            "params": [],
            "param_names": [],
            "weight_decay": 0.0 if no_decay else optim.weight_decay,
            "lr": optim.lr * scale,
            "lr_scale_applied": scale,
        })
        group["params"].append(parameter)
        group["param_names"].append(name)
    if not groups:
        raise ConfigError("no trainable parameters: the strategy froze everything")
    return list(groups.values())


def _bare_name(name: str) -> str:
    """A parameter name without peft's wrapping (base_model.model., .base_layer, modules_to_save)."""
    name = name.removeprefix("base_model.model.")
    for part in (".base_layer", ".original_module", ".modules_to_save.default"):
        name = name.replace(part, "")
    return name


def build_optimizer(groups: list[dict[str, Any]], optim: OptimConfig) -> torch.optim.Optimizer:
    """The optimizer over ``groups``; unknown names list timm's choices."""
    from timm.optim import list_optimizers

    name = optim.name.lower()
    if name == "sgd":  # timm's "sgd" is Nesterov SGD and its "momentum" the plain kind
        name = "sgd" if optim.nesterov else "momentum"
    kwargs: dict[str, Any] = {}
    if name in ("sgd", "momentum", "rmsprop", "rmsproptf"):
        kwargs["momentum"] = optim.momentum
    if name in ("adam", "adamw", "nadam", "nadamw", "radam", "lamb", "lambw", "adan"):
        kwargs["betas"] = tuple(optim.betas)
    plain = [{k: v for k, v in g.items() if k not in ("param_names", "lr_scale_applied")} for g in groups]
    try:
        optimizer = create_optimizer_v2(plain, opt=name, lr=optim.lr, weight_decay=optim.weight_decay, **kwargs)
    except (AssertionError, ValueError, KeyError) as exc:
        raise ConfigError(f"optim.name {optim.name!r}: {exc}; timm offers {list_optimizers()[:40]}") from None
    for group, source in zip(optimizer.param_groups, groups):
        group["lr"] = source["lr"]  # keep each group's scaled lr (timm sets the base lr everywhere)
        group["weight_decay"] = source["weight_decay"]
    return optimizer


class PlateauWithWarmup(PlateauLRScheduler):
    """timm's plateau scheduler, fixed in two ways.

    Warmup per optimizer step: timm's steps a plateau schedule per epoch only, so a warmup shorter than
    an epoch (e.g. half an epoch) never reached the base learning rate: the run stayed at the warmup's
    first value. Here ``step_update`` ramps it linearly over ``warmup_updates`` steps, and the plateau
    logic starts once the warmup is over.

    Resumable: timm's state_dict keeps only ``best`` and ``last_epoch``, so a resumed run forgot how
    many epochs had not improved (and the cooldown) and cut the learning rate later than the
    uninterrupted run; this one saves torch's whole ReduceLROnPlateau state."""

    def __init__(self, optimizer: torch.optim.Optimizer, warmup_updates: int, updates_per_epoch: int,
                 warmup_lr_init: float, **plateau: Any):
        with warnings.catch_warnings():  # its deprecation names the lost state, which this class keeps
            warnings.filterwarnings("ignore", message=".*PlateauLRScheduler is deprecated.*")
            super().__init__(optimizer, warmup_t=0, **plateau)
        self.warmup_updates, self.updates_per_epoch = warmup_updates, updates_per_epoch
        self.warmup_lr_init = warmup_lr_init
        if warmup_updates:
            self.update_groups([warmup_lr_init for _ in self.base_values])

    def step_update(self, num_updates: int, metric: Optional[float] = None) -> None:
        if self.warmup_updates and num_updates <= self.warmup_updates:
            fraction = num_updates / self.warmup_updates
            self.update_groups([self.warmup_lr_init + (base - self.warmup_lr_init) * fraction
                                for base in self.base_values])

    def step(self, epoch: int, metric: Optional[float] = None) -> None:
        if epoch * self.updates_per_epoch >= self.warmup_updates:  # the plateau logic starts after warmup
            super().step(epoch, metric)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "reduce_on_plateau": self.lr_scheduler.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        if "reduce_on_plateau" in state_dict:  # checkpoints written before this class have only timm's part
            self.lr_scheduler.load_state_dict(state_dict["reduce_on_plateau"])


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, epochs: int, steps_per_epoch: int, monitor: str
) -> Optional[dict[str, Any]]:
    """A Lightning ``lr_scheduler`` config: timm schedulers stepped per optimizer step, except plateau
    (per epoch, on ``monitor``) and onecycle (torch's OneCycleLR)."""
    steps_per_epoch = max(1, steps_per_epoch)
    total_steps = epochs * steps_per_epoch
    if cfg.name == "none" and not cfg.warmup_epochs:
        return None
    if cfg.name == "onecycle":
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=[g["lr"] for g in optimizer.param_groups],
            total_steps=total_steps,
            pct_start=min(0.9, max(cfg.warmup_epochs / epochs, 1 / total_steps)) if cfg.warmup_epochs else 0.3,
        )
        return {"scheduler": scheduler, "interval": "step"}
    if cfg.name == "plateau":
        scheduler = PlateauWithWarmup(
            optimizer, warmup_updates=round(cfg.warmup_epochs * steps_per_epoch), updates_per_epoch=steps_per_epoch,
            warmup_lr_init=cfg.warmup_lr_init, decay_rate=cfg.gamma, patience_t=cfg.patience, lr_min=cfg.min_lr,
            mode="min" if "loss" in monitor else "max")
        # stepped per epoch on the monitored value; its warmup moves per step (Classifier.on_train_batch_end)
        return {"scheduler": scheduler, "interval": "epoch", "monitor": monitor}
    timm_name = {"none": "step", "step": "step", "multistep": "multistep", "cosine": "cosine",
                 "cosine_restarts": "cosine"}[cfg.name]
    kwargs: dict[str, Any] = dict(
        sched=timm_name,
        num_epochs=epochs,
        warmup_epochs=cfg.warmup_epochs,
        warmup_lr=cfg.warmup_lr_init,
        warmup_prefix=cfg.name in ("cosine", "cosine_restarts"),
        min_lr=cfg.min_lr,
        cooldown_epochs=0,
        step_on_epochs=False,
        updates_per_epoch=steps_per_epoch,
        decay_rate=cfg.gamma,
    )
    if cfg.name == "cosine":
        # warmup comes before the cosine, which then decays to min_lr exactly at the last epoch
        if cfg.warmup_epochs >= epochs:
            raise ConfigError(f"schedule.warmup_epochs ({cfg.warmup_epochs}) must be below train.epochs ({epochs})")
        kwargs["num_epochs"] = epochs - cfg.warmup_epochs
    elif cfg.name == "none":
        kwargs.update(decay_epochs=10 ** 9, decay_rate=1.0)
    elif cfg.name == "step":
        kwargs["decay_epochs"] = cfg.step_size
    elif cfg.name == "multistep":
        kwargs["decay_milestones"] = cfg.milestones or [max(1, epochs // 2)]
    elif cfg.name == "cosine_restarts":
        # timm's cosine with cycles: the schedule restarts every restart_epochs
        kwargs.update(num_epochs=cfg.restart_epochs, cycle_limit=max(1, -(-epochs // cfg.restart_epochs)),
                      cycle_decay=1.0)
    scheduler, _ = create_scheduler_v2(optimizer, **kwargs)
    return {"scheduler": scheduler, "interval": "step"}


def step_timm_scheduler(scheduler, interval: str, global_step: int, epoch: int, metric=None) -> None:
    """Advance a timm scheduler the way Lightning advances torch ones."""
    if interval == "step":
        scheduler.step_update(num_updates=global_step)
    else:
        scheduler.step(epoch=epoch + 1, metric=metric)

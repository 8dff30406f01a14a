"""The probe engine's head (:mod:`fgvc.train.engines.probe`), trained on cached features: a linear
layer or small MLP (torch, with the config's loss, optimizer and a warmup + cosine schedule), or
scikit-learn's logistic regression with C fixed or chosen on the val split."""

from __future__ import annotations

import math
from typing import Iterable, Iterator

import numpy as np
import torch
from torch import nn

from fgvc.config import ExperimentConfig
from fgvc.errors import ConfigError
from fgvc.models.heads import mlp_head
from fgvc.models.logreg import fit_logreg
from fgvc.models.ordinal_regression import fit_ordinal_ridge
from fgvc.train.losses import build_loss, class_weights
from fgvc.train.optim import build_optimizer


def _head_module(cfg: ExperimentConfig, dim: int, classes: int) -> nn.Module:
    hidden = [cfg.probe.hidden] if cfg.probe.head == "mlp" else []
    return mlp_head(dim, classes, hidden)


def train_head(cfg: ExperimentConfig, x: torch.Tensor, y: torch.Tensor, classes: int,
               val: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[nn.Module, list[dict]]:
    """Train the probe head on features ``x`` (N, D) or augmented views (V, N, D); seeded by cfg.seed."""
    generator = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    if x.ndim == 3:  # views: every view is a training example with the image's label
        y = y.repeat(x.shape[0])
        x = x.reshape(-1, x.shape[-1])
    if cfg.probe.head == "logreg":
        return _logistic_regression(cfg, x, y, classes, val)
    if cfg.probe.head == "regression":
        return _ordinal_regression(cfg, x, y, classes, val)
    head = _head_module(cfg, x.shape[1], classes)
    loss_fn = build_loss(cfg.loss, np.bincount(y.numpy(), minlength=classes))
    optimizer = build_optimizer([{"params": list(head.parameters()), "lr": cfg.optim.lr,
                                  "weight_decay": cfg.optim.weight_decay}], cfg.optim)
    steps_per_epoch = math.ceil(len(x) / cfg.train.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, probe_lr_factor(cfg, steps_per_epoch))
    history = []
    for epoch in range(cfg.train.epochs):
        head.train()
        order = torch.randperm(len(x), generator=generator)
        losses = []
        for start in range(0, len(x), cfg.train.batch_size):
            batch = order[start:start + cfg.train.batch_size]
            loss = loss_fn(head(x[batch]), y[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(float(loss.detach()))
        row = {"epoch": epoch, "train/loss": float(np.mean(losses)), "lr": optimizer.param_groups[0]["lr"]}
        if val is not None and len(val[1]):
            head.eval()
            with torch.no_grad():
                logits = head(val[0])
            row["val/loss"] = float(loss_fn(logits, val[1]))
            row["val/top1"] = float((logits.argmax(1) == val[1]).float().mean())
        history.append(row)
    return head.eval(), history


PROBE_SCHEDULES = ("none", "cosine")


def probe_lr_factor(cfg: ExperimentConfig, steps_per_epoch: int):
    """lr multiplier per step for the probe head: linear warmup (``schedule.warmup_epochs`` from
    ``warmup_lr_init``), then constant (``none``) or cosine down to ``min_lr``."""
    schedule = cfg.schedule
    if schedule.name not in PROBE_SCHEDULES:
        raise ConfigError(f"schedule.name {schedule.name!r} is not supported by train.engine: probe; "
                          f"use one of {list(PROBE_SCHEDULES)}")
    total = max(1, cfg.train.epochs * steps_per_epoch)
    warmup = int(round(schedule.warmup_epochs * steps_per_epoch))
    start, floor = schedule.warmup_lr_init / cfg.optim.lr, schedule.min_lr / cfg.optim.lr

    def factor(step: int) -> float:
        if step < warmup:
            return start + (1 - start) * step / warmup
        if schedule.name == "none":
            return 1.0
        progress = (step - warmup) / max(1, total - warmup)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


PROBE_C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)  # low C: standardised, wide features


def _logistic_regression(cfg: ExperimentConfig, x: torch.Tensor, y: torch.Tensor, classes: int,
                         val: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[nn.Module, list[dict]]:
    """scikit-learn's multinomial logistic regression, turned into an equivalent nn.Linear. With
    ``probe.c: auto`` each C of a grid is fitted on train and the one with the lowest val
    log-loss (a proper score, steadier than accuracy on a small val split) is kept; the history then
    has one row per C."""
    if cfg.probe.c != "auto":
        return _fit_logreg(cfg, cfg.probe.c, x, y, classes), []
    if val is None or not len(val[1]):
        raise ConfigError("probe.c: auto chooses C on the val split; set data.val_fraction > 0")
    return choose_on_val((({"probe_c": c}, _fit_logreg(cfg, c, x, y, classes)) for c in PROBE_C_GRID), val)


def choose_on_val(candidates: Iterable[tuple[dict, nn.Module]], val: tuple[torch.Tensor, torch.Tensor]
                  ) -> tuple[nn.Module, list[dict]]:
    """The head of lowest val log-loss among ``candidates`` ((its settings, head) pairs), and one history row
    per candidate: its settings, val loss and top-1, and whether it was chosen."""
    rows, heads = [], []
    for settings, head in candidates:
        with torch.no_grad():
            logits = head(val[0])
        rows.append({"epoch": len(rows), **settings, "val/loss": float(nn.functional.cross_entropy(logits, val[1])),
                     "val/top1": float((logits.argmax(1) == val[1]).float().mean())})
        heads.append(head)
    best = min(range(len(rows)), key=lambda i: rows[i]["val/loss"])
    for i, row in enumerate(rows):
        row["chosen"] = int(i == best)
    return heads[best], rows


def _fit_logreg(cfg: ExperimentConfig, c: float, x: torch.Tensor, y: torch.Tensor, classes: int) -> nn.Module:
    weights = class_weights(np.bincount(y.numpy(), minlength=classes), cfg.loss.class_weights)
    fit = fit_logreg(x, y, c, class_weight=weights, seed=cfg.seed, standardize=cfg.probe.standardize)
    return fit.to_linear(classes)


RIDGE_ALPHA_GRID = (1.0, 10.0, 100.0, 1000.0, 10000.0, 100000.0)  # on standardised features
TEMPERATURE_GRID = (0.005, 0.01, 0.02, 0.04, 0.08, 0.16)  # the softmax of the rounding: probabilities only


def _ordinal_regression(cfg: ExperimentConfig, x: torch.Tensor, y: torch.Tensor, classes: int,
                        val: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[nn.Module, list[dict]]:
    """Deitsch et al.'s regression on the class position, rounded to the nearest class
    (:mod:`fgvc.models.ordinal_regression`). ``probe.c: auto`` chooses the ridge strength and the
    probabilities' temperature on the val log-loss (one history row each); a number C fits alpha = 1/C
    and keeps the middle temperature. ``loss.class_weights`` weigh the images."""
    weights = class_weights(np.bincount(y.numpy(), minlength=classes), cfg.loss.class_weights)
    per_image = None if weights is None else weights.double().numpy()[y.numpy()]
    if cfg.probe.c != "auto":
        fit = fit_ordinal_ridge(x, y, classes, 1.0 / cfg.probe.c, per_image)
        return fit.to_linear(classes, TEMPERATURE_GRID[len(TEMPERATURE_GRID) // 2]), []
    if val is None or not len(val[1]):
        raise ConfigError("probe.c: auto chooses the regression's strength on the val split; set data.val_fraction > 0")

    def candidates() -> Iterator[tuple[dict, nn.Module]]:
        for alpha in RIDGE_ALPHA_GRID:  # one fit per strength; the temperature only rescales its logits
            fit = fit_ordinal_ridge(x, y, classes, alpha, per_image)
            for temperature in TEMPERATURE_GRID:
                yield {"probe_c": 1.0 / alpha, "temperature": temperature}, fit.to_linear(classes, temperature)

    return choose_on_val(candidates(), val)

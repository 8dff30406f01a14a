"""``strategy.name: features``: the frozen backbone runs once over the data (features cached on disk),
then only a head trains on the cached tensors: a linear layer or small MLP (torch), or scikit-learn's
logistic regression. Repeating many seeds of the head costs a small fraction of one backbone pass.

The trained head is put back on the backbone, so the run folder is an ordinary one: `fgvc eval`,
`predict`, `ensemble` and `report` work on it as on any run.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from torch import nn

from fgvc.config import ExperimentConfig
from fgvc.data import load_data
from fgvc.data.transforms import build_transform, resolve_normalization
from fgvc.errors import ConfigError
from fgvc.evaluate.metrics import compute_metrics
from fgvc.evaluate.predict import write_predictions_csv
from fgvc.models.assembly import build_network
from fgvc.models.heads import classifier_name, mlp_head
from fgvc.models.strategies import count_parameters
from fgvc.report.html import finish_run_folder
from fgvc.runfolder import RunFolder
from fgvc.train.feature_cache import FeatureBank, FeatureCache, bank_key, cache_key, extract_features
from fgvc.train.losses import build_loss, class_weights
from fgvc.train.optim import build_optimizer


def _head_module(cfg: ExperimentConfig, dim: int, classes: int) -> nn.Module:
    hidden = [cfg.strategy.probe_hidden] if cfg.strategy.probe_head == "mlp" else []
    return mlp_head(dim, classes, hidden)


def train_head(cfg: ExperimentConfig, x: torch.Tensor, y: torch.Tensor, classes: int,
               val: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[nn.Module, list[dict]]:
    """Train the probe head on features ``x`` (N, D) or augmented views (V, N, D); seeded by cfg.seed."""
    generator = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    if x.ndim == 3:  # views: every view is a training example with the image's label
        y = y.repeat(x.shape[0])
        x = x.reshape(-1, x.shape[-1])
    if cfg.strategy.probe_head == "logreg":
        return _logistic_regression(cfg, x, y, classes, val)
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
        raise ConfigError(f"schedule.name {schedule.name!r} is not supported by strategy.name=features; "
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
    ``strategy.probe_c: auto`` each C of a grid is fitted on train and the one with the lowest val
    log-loss (a proper score, steadier than accuracy on a small val split) is kept; the history then
    has one row per C."""
    if cfg.strategy.probe_c != "auto":
        return _fit_logreg(cfg, cfg.strategy.probe_c, x, y, classes), []
    if val is None or not len(val[1]):
        raise ConfigError("strategy.probe_c: auto chooses C on the val split; set data.val_fraction > 0")
    rows, heads = [], []
    for c in PROBE_C_GRID:
        head = _fit_logreg(cfg, c, x, y, classes)
        with torch.no_grad():
            logits = head(val[0])
        rows.append({"epoch": len(rows), "probe_c": c, "val/loss": float(nn.functional.cross_entropy(logits, val[1])),
                     "val/top1": float((logits.argmax(1) == val[1]).float().mean())})
        heads.append(head)
    best = min(range(len(rows)), key=lambda i: rows[i]["val/loss"])
    for i, row in enumerate(rows):
        row["chosen"] = int(i == best)
    return heads[best], rows


def _fit_logreg(cfg: ExperimentConfig, c: float, x: torch.Tensor, y: torch.Tensor, classes: int) -> nn.Module:
    from sklearn.linear_model import LogisticRegression

    weights = class_weights(np.bincount(y.numpy(), minlength=classes), cfg.loss.class_weights)
    model = LogisticRegression(C=c, max_iter=2000, random_state=cfg.seed,
                               class_weight=None if weights is None else
                               {k: float(w) for k, w in enumerate(weights) if w > 0})
    data = x.numpy().astype(np.float64)
    mean, scale = np.zeros(data.shape[1]), np.ones(data.shape[1])
    if cfg.strategy.probe_standardize:
        mean, scale = data.mean(0), data.std(0) + 1e-6
    model.fit((data - mean) / scale, y.numpy())
    weight = np.zeros((classes, x.shape[1]), dtype=np.float32)
    bias = np.zeros(classes, dtype=np.float32)
    coef, intercept = model.coef_ / scale, model.intercept_ - (model.coef_ / scale) @ mean  # standardising folded in
    if len(model.classes_) == 2 and coef.shape[0] == 1:  # binary: one logit -> two symmetric ones
        coef = np.vstack([-coef / 2, coef / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
    weight[model.classes_] = coef
    bias[model.classes_] = intercept
    if len(model.classes_) < classes:  # classes absent from training never win
        bias[np.setdiff1d(np.arange(classes), model.classes_)] = -1e4
    head = nn.Linear(x.shape[1], classes)
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(weight))
        head.bias.copy_(torch.from_numpy(bias))
    return head


def backbone_network(cfg: ExperimentConfig, num_classes: int):
    """The frozen network of a probe run: pretrained weights, or the random init of ``cfg.seed``."""
    torch.manual_seed(cfg.seed)
    return build_network(cfg, num_classes, pretrained=True)


def _head_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.get_submodule(classifier_name(model)).parameters())


def train_feature_probe(cfg: ExperimentConfig, folder: Optional[RunFolder] = None) -> tuple[Path, dict[str, Any]]:
    """One run of the cached-feature probe; writes an ordinary run folder (claimed after the data and
    the schedule are checked, unless ``folder`` is given); returns (run folder, metrics)."""
    started = time.perf_counter()
    splits = load_data(cfg.data)
    probe_lr_factor(cfg, 1)  # an unsupported schedule fails before a folder is claimed
    folder = folder or RunFolder.claim(cfg.run_dir)
    with folder.recording():
        metrics = _probe(cfg, folder, splits, started)
    return folder.path, metrics


class ProbeFeatures:
    """The backbone's features for a config's splits, from the on-disk cache (computed when missing):
    plain features per image in a bank; ``strategy.feature_views`` augmented training views per list."""

    def __init__(self, cfg: ExperimentConfig, splits):
        self.cfg, self.splits = cfg, splits
        norm = resolve_normalization(cfg.data.transforms, cfg.model)
        self.plain = build_transform(cfg.data.transforms, norm, train=False)
        self.augmented = build_transform(cfg.data.transforms, norm, train=True)
        self.cache = FeatureCache(Path(cfg.data.cache_dir) / "features")
        self.bank = FeatureBank(Path(cfg.data.cache_dir) / "features")
        self.built: dict[str, Any] = {}

    def backbone(self) -> nn.Module:  # built only when a feature set is missing from the cache
        if "model" not in self.built:
            self.built["model"], self.built["report"] = backbone_network(self.cfg, self.splits.num_classes)
        return self.built["model"]

    def get(self, name: str, train_views: bool = False) -> tuple[torch.Tensor, dict]:
        """(features, meta) of split ``name``: (N, D), or (views, N, D) for augmented training views."""
        cfg, images = self.cfg, getattr(self.splits, name)
        views = cfg.strategy.feature_views
        transform, count = (self.augmented, views) if train_views and views else (self.plain, 0)

        def compute(todo=images):
            model = self.backbone()
            tensor = extract_features(model, todo, transform, cfg.eval.batch_size, cfg.data.num_workers, count,
                                      cfg.data.split_seed, engine=cfg.strategy.feature_engine)
            return tensor, {"backbone_params": count_parameters(model)[0] - _head_params(model)}

        if count == 0:  # plain features are the image's alone: kept per image, whatever the split
            return self.bank.get_or_compute(bank_key(cfg, transform), images, compute)
        return self.cache.get_or_compute(cache_key(cfg, images, transform, count, cfg.data.split_seed), compute)

    @property
    def hits_and_misses(self) -> dict[str, int]:
        return {"hits": self.cache.hits + self.bank.hits, "misses": self.cache.misses + self.bank.misses}


def _probe(cfg: ExperimentConfig, folder: RunFolder, splits, started: float) -> dict[str, Any]:
    run_dir = folder.path
    folder.write_header(cfg.to_yaml(), splits.class_names)
    features = ProbeFeatures(cfg, splits)
    x_train, meta = features.get("train", train_views=True)
    y_train = torch.as_tensor(splits.train.labels)
    evaluated = {n: (features.get(n)[0], torch.as_tensor(getattr(splits, n).labels))
                 for n in ("val", "test") if getattr(splits, n) is not None and len(getattr(splits, n))}
    head, history = train_head(cfg, x_train, y_train, splits.num_classes, evaluated.get("val"))

    # Only the head is saved: the frozen backbone is rebuilt from the config's weights (the cache key
    # names them), so eval / predict / ensemble / report load this run like any other.
    folder.checkpoints.mkdir(exist_ok=True)
    torch.save(head.state_dict(), folder.probe_head_file)
    head_params = sum(p.numel() for p in head.parameters())
    report = features.built.get("report")
    metrics: dict[str, Any] = {"run_dir": str(run_dir), "seed": cfg.seed, "epochs": cfg.train.epochs,
                               "parameters": {"total": meta["backbone_params"] + head_params, "trainable": head_params},
                               "weights": str(report) if report else None,
                               "feature_cache": features.hits_and_misses}
    chosen = [row["probe_c"] for row in history if row.get("chosen")]
    if chosen:
        metrics["probe_c"] = chosen[0]
    for split, (x, y) in evaluated.items():
        with torch.no_grad():
            probs = head(x).softmax(-1)
        metrics[split] = compute_metrics(probs, y, splits.class_names, cfg.eval.top_k)
        folder.write_metrics(metrics[split], split)
        write_predictions_csv(folder.predictions_file(split), getattr(splits, split), probs)
    metrics["train_seconds"] = round(time.perf_counter() - started, 3)
    if history:
        import csv

        with folder.history_file.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(history[-1]))
            writer.writeheader()
            writer.writerows(history)
    finish_run_folder(run_dir, metrics, splits.class_names)
    return metrics

"""The LightningModule: *what* is computed (loss, metrics, optimizers). The Trainer decides *how*."""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from timm.data import Mixup
from timm.scheduler.scheduler import Scheduler as TimmScheduler
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from fgvc.config import ExperimentConfig
from fgvc.data.batches import BatchPreparation
from fgvc.data.datamodule import mix_seed
from fgvc.data.device_decode import EncodedBatch
from fgvc.data.transforms import transforms_for
from fgvc.errors import NonFiniteLossError
from fgvc.models.strategies import opens_over_epochs, set_norm_modes
from fgvc.train.losses import build_loss, pairwise_confusion
from fgvc.train.optim import build_optimizer, build_param_groups, build_scheduler, step_timm_scheduler


def weight_penalty(model: nn.Module, l1: float, p, weight: float) -> torch.Tensor:
    """l1 * sum|w| + weight * ||w||_p over trainable weight tensors (norms and biases excluded)."""
    tensors = [w for w in model.parameters() if w.requires_grad and w.ndim > 1]
    total = torch.zeros((), device=tensors[0].device) if tensors else torch.zeros(())
    if l1:
        total = total + l1 * sum(w.abs().sum() for w in tensors)
    if weight:
        if p == "inf":
            norm = torch.stack([w.abs().max() for w in tensors]).max()
        else:
            p = float(p)
            norm = torch.stack([w.abs().pow(p).sum() for w in tensors]).sum().pow(1 / p)
        total = total + weight * norm
    return total


def classification_metrics(num_classes: int, prefix: str, top_k: int = 5, sync: bool = True) -> MetricCollection:
    """top-1, top-k (left out when k >= the class count: 1.0 by construction) and macro F1. ``sync``
    False: computed in this process alone even when a process group exists (a pipeline's rank 0)."""
    metrics = {"top1": MulticlassAccuracy(num_classes, top_k=1, average="micro", sync_on_compute=sync),
               "f1_macro": MulticlassF1Score(num_classes, average="macro", sync_on_compute=sync)}
    if 1 < top_k < num_classes:
        metrics[f"top{top_k}"] = MulticlassAccuracy(num_classes, top_k=top_k, average="micro", sync_on_compute=sync)
    return MetricCollection(metrics, prefix=prefix)


class Classifier(L.LightningModule):
    """Fine-tunes ``model`` on ``cfg``: loss (with mixup/cutmix), weight penalties, metrics, optimizers."""

    FINITE_CHECK_EVERY = 16

    def __init__(self, model: nn.Module, cfg: ExperimentConfig, class_counts: np.ndarray):
        super().__init__()
        self.model = model
        self.cfg = cfg
        self.num_classes = len(class_counts)
        self.loss_fn = build_loss(cfg.loss, class_counts)
        mix = cfg.data.mixup
        self.mixup = (
            Mixup(mixup_alpha=mix.mixup_alpha, cutmix_alpha=mix.cutmix_alpha, prob=mix.prob,
                  switch_prob=mix.switch_prob, mode=mix.mode, num_classes=self.num_classes,
                  label_smoothing=cfg.loss.smoothing if cfg.loss.name == "label_smoothing" else 0.0)
            if mix.enabled else None
        )
        # training accuracy only: a full metric collection per step costs throughput for little insight
        self.train_top1 = MulticlassAccuracy(self.num_classes, top_k=1, average="micro")
        self.val_metrics = classification_metrics(self.num_classes, "val/", cfg.eval.top_k)
        # uint8 batches (data.uint8_batches) are normalised here, on the model's device
        self.batches = BatchPreparation(transforms_for(cfg).norm, cfg.data.transforms)
        self._scheduler_interval = "step"
        self._frozen_norms: list[nn.Module] = []
        self._first_bad: torch.Tensor | None = None  # (epoch, batch, global step) of the first non-finite loss

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.cfg.train.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.model(images)

    def on_train_epoch_start(self) -> None:
        # Frozen BatchNorm must keep using (and not update) its running statistics, so it is in eval
        # mode; trainable BatchNorm is in train mode. Both are set at every epoch start, as modes are
        # not in a checkpoint: Lightning puts the whole model in train mode when a fit starts, and after
        # validation it restores each module's previous mode, so a norm that gradual unfreezing opens
        # would otherwise stay in eval mode in an uninterrupted run but not in a resumed one.
        self._frozen_norms = set_norm_modes(self.model) if self.cfg.strategy.freeze_bn else []

    def on_train_batch_start(self, batch, batch_idx) -> None:
        for norm in self._frozen_norms:
            if norm.training:
                norm.eval()

    def on_before_batch_transfer(self, batch, dataloader_idx: int):
        images, targets = batch
        if isinstance(images, EncodedBatch):  # data.jpeg_decode: device; decode_jpeg takes CPU bytes
            images = images.decode(self.device)
        return images, targets

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        images, targets = batch
        return self.batches.normalize(images), targets

    def training_step(self, batch, batch_idx):
        images, targets = batch
        if self.cfg.data.uint8_batches and self.batches.erases:  # else the workers erased already
            seed = mix_seed(self.cfg.seed, self.current_epoch, batch_idx, self.global_rank, 11)
            images = self.batches.erase(images, seed)
        hard_targets = targets
        if self.mixup is not None and len(images) % 2 == 0:
            images, targets = self.mixup(images, targets)
        method_loss = getattr(self.model, "training_loss", None)  # a fine-grained method's own objective
        if method_loss is not None:
            if self.cfg.train.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            loss, logits = method_loss(images, targets, self.loss_fn)
        else:
            logits = self(images)
            loss = self.loss_fn(logits, targets)
        if self.cfg.loss.confusion:
            loss = loss + self.cfg.loss.confusion * pairwise_confusion(logits, targets)
        opt = self.cfg.optim
        if opt.l1 or opt.penalty_weight:
            loss = loss + weight_penalty(self.model, opt.l1, opt.penalty_p, opt.penalty_weight)
        self._watch_finite(loss, batch_idx)
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(images))
        if targets is hard_targets:
            self.train_top1(logits.detach(), hard_targets)
            self.log("train/top1", self.train_top1, on_step=False, on_epoch=True, batch_size=len(images))
        return loss

    def _watch_finite(self, loss: torch.Tensor, batch_idx: int) -> None:
        """Stop on a NaN/inf loss, naming the step. On the CPU every step is checked; on an accelerator
        the first bad step is recorded on the device (no sync) and checked every few steps, so the
        check does not stall the GPU pipeline."""
        where = torch.tensor([self.current_epoch, batch_idx, self.global_step], device=loss.device)
        if self._first_bad is None or self._first_bad.device != loss.device:
            self._first_bad = torch.full((3,), -1, dtype=torch.long, device=loss.device)
        fresh = (self._first_bad[0] < 0) & ~torch.isfinite(loss.detach())
        self._first_bad = torch.where(fresh, where, self._first_bad)
        if loss.device.type == "cpu" or batch_idx % self.FINITE_CHECK_EVERY == 0:
            self.raise_if_nonfinite()

    def raise_if_nonfinite(self) -> None:
        """Raise NonFiniteLossError if a non-finite loss was recorded (called before every checkpoint)."""
        if self._first_bad is None:
            return
        epoch, batch, step = (int(v) for v in self._first_bad.tolist())
        if epoch >= 0:
            raise NonFiniteLossError(f"training loss is nan or inf at epoch {epoch}, batch {batch} (global step {step})")

    def nonfinite_parameters(self) -> list[str]:
        """Names of parameters holding a NaN or infinite value (a few, for the message)."""
        return [name for name, p in self.model.named_parameters() if not torch.isfinite(p).all()][:3]

    def validation_step(self, batch, batch_idx):
        images, targets = batch
        logits = self(images)
        loss = self.loss_fn(logits, targets)
        self.val_metrics.update(logits, targets)
        self.log("val/loss", loss, on_epoch=True, prog_bar=True, sync_dist=True, batch_size=len(images))
        self.log_dict(self.val_metrics, on_epoch=True, prog_bar=False, batch_size=len(images))

    def configure_optimizers(self):
        cfg = self.cfg
        groups = build_param_groups(self.model, cfg.optim, cfg.strategy, include_frozen=opens_over_epochs(cfg.strategy))
        optimizer = build_optimizer(groups, cfg.optim)
        epochs = cfg.train.epochs
        steps_per_epoch = max(1, int(np.ceil(self.trainer.estimated_stepping_batches / max(1, self.trainer.max_epochs))))
        scheduler = build_scheduler(optimizer, cfg.schedule, epochs, steps_per_epoch, self.monitor)
        if scheduler is None:
            return optimizer
        self._scheduler_interval = scheduler["interval"]
        return {"optimizer": optimizer, "lr_scheduler": scheduler}

    @property
    def monitor(self) -> str:
        return self.cfg.train.monitor

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        if self._scheduler_interval == "epoch":  # the plateau schedule: stepped per epoch, warmed up per step
            for config in self.trainer.lr_scheduler_configs:
                if isinstance(config.scheduler, TimmScheduler):
                    step_timm_scheduler(config.scheduler, "step", self.global_step, self.current_epoch)

    def lr_scheduler_step(self, scheduler, metric) -> None:
        if isinstance(scheduler, TimmScheduler):
            step_timm_scheduler(scheduler, self._scheduler_interval, self.global_step, self.current_epoch, metric)
        else:
            super().lr_scheduler_step(scheduler, metric)

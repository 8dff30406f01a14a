"""Callbacks: per-epoch reseeding (resume-exact runs), gradual unfreezing, and the epoch summary + history."""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path

import lightning as L
import torch
from rich.console import Console

from fgvc.data.datamodule import mix_seed, seed_everything_quietly
from fgvc.errors import NonFiniteLossError
from fgvc.models.strategies import count_parameters, unfreeze_stage_for_epoch


class EpochReseed(L.Callback):
    """Reseed every RNG from (seed, epoch) at each epoch start, so a resumed run repeats the original."""

    def __init__(self, seed: int):
        self.seed = seed

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        seed_everything_quietly(mix_seed(self.seed, trainer.current_epoch, 7), devices=True)


class FiniteLossGuard(L.Callback):
    """Stops the run before a non-finite state is checkpointed (Lightning runs checkpoint callbacks
    last): a NaN/inf training loss, NaN/inf weights, or a NaN/inf validation loss. So last.ckpt, when
    there is one, holds finite weights with a finite validation loss."""

    def on_validation_start(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            pl_module.raise_if_nonfinite()

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        self._check_weights(trainer, pl_module)
        val_loss = trainer.callback_metrics.get("val/loss")
        if val_loss is not None and not torch.isfinite(val_loss).all():
            raise NonFiniteLossError(f"validation loss is {float(val_loss)} after epoch {trainer.current_epoch}")

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        pl_module.raise_if_nonfinite()
        self._check_weights(trainer, pl_module)

    @staticmethod
    def _check_weights(trainer, pl_module) -> None:
        bad = pl_module.nonfinite_parameters()
        if bad:
            raise NonFiniteLossError(f"weights became nan or inf in epoch {trainer.current_epoch} ({', '.join(bad)})")


class GradualUnfreeze(L.Callback):
    """Open one more backbone stage (top down) every ``strategy.unfreeze_every`` epochs.

    All parameters sit in the optimizer from the start (frozen ones get no gradient and no update),
    so schedules and optimizer state need no surgery and a resumed run unfreezes identically.
    """

    def __init__(self, strategy_cfg):
        self.cfg = strategy_cfg

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        opened = unfreeze_stage_for_epoch(pl_module.model, self.cfg, trainer.current_epoch)
        _, trainable = count_parameters(pl_module.model)
        pl_module.log("train/open_stages", float(opened), on_epoch=True, on_step=False)
        pl_module.log("train/trainable_params", float(trainable), on_epoch=True, on_step=False)


class EpochSummary(L.Callback):
    """Print one clear line per epoch and keep ``history.csv`` (one row per finished epoch)."""

    def __init__(self, history_path: Path):
        self.path = Path(history_path)
        self.rows: list[dict] = []
        self._start = 0.0

    def on_train_start(self, trainer, pl_module) -> None:  # after a checkpoint is restored
        if self.path.is_file():  # resumed: keep the rows of epochs the checkpoint has finished
            with self.path.open() as handle:
                rows = list(csv.DictReader(handle))
            self.rows = [r for r in rows if int(r["epoch"]) < trainer.current_epoch]
            if len(self.rows) < len(rows) and trainer.is_global_zero:
                # stopped between a row and its checkpoint: history matches last.ckpt again right away
                write_history(self.path, self.rows)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        row = {"epoch": trainer.current_epoch, "seconds": round(time.perf_counter() - self._start, 3),
               "lr": trainer.optimizers[0].param_groups[-1]["lr"] if trainer.optimizers else 0.0}
        row.update({k: round(v, 6) for k, v in sorted(metrics.items())})
        self.rows.append(row)
        if trainer.is_global_zero:
            write_history(self.path, self.rows)
            print_epoch(trainer.current_epoch, trainer.max_epochs, metrics, row["lr"], row["seconds"])


def print_epoch(epoch: int, epochs: int, metrics: dict[str, float], lr: float, seconds: float) -> None:
    """The one line per epoch every fgvc training loop prints ("epoch 2/3  train/loss ...")."""
    shown = "  ".join(f"{k} {metrics[k]:.4f}" for k in ("train/loss", "train/top1", "val/loss", "val/top1",
                                                        "val/f1_macro") if k in metrics)
    Console(stderr=True).print(  # made here: a stored Console cannot be pickled for ddp_spawn
        f"epoch {epoch + 1}/{epochs}  {shown}  lr {lr:.2e}  {seconds:.1f}s", highlight=False, soft_wrap=True)


def write_history(path: Path, rows: list[dict]) -> None:
    """history.csv: one row per finished epoch, every column any row has."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.tmp")  # replaced whole: a full disk never leaves half a history
    try:
        with partial.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


class EpochProgressBar(L.pytorch.callbacks.RichProgressBar):
    """Lightning's rich bar, counting epochs from 1 of N like fgvc's log ("epoch 2/3"), not 0 of N-1."""

    def _get_train_description(self, current_epoch: int) -> str:
        text = f"epoch {current_epoch + 1}" + (f"/{self.trainer.max_epochs}" if self.trainer.max_epochs else "")
        return f"{text:{len(self.validation_description)}}"

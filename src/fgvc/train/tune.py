"""Learning-rate range test and batch-size search, through Lightning's Tuner."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import lightning as L
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from fgvc.config import ExperimentConfig  # noqa: E402
from fgvc.data import load_data  # noqa: E402
from fgvc.models.assembly import build_network  # noqa: E402
from fgvc.progress import show_progress  # noqa: E402
from fgvc.train.engines.lightning import build_datamodule  # noqa: E402
from fgvc.train.module import Classifier  # noqa: E402
from fgvc.train.quiet import quiet_lightning  # noqa: E402


@dataclass
class LrFinding:
    suggestion: Optional[float]
    plot: Path
    lrs: list[float]
    losses: list[float]


def _setup(cfg: ExperimentConfig):
    quiet_lightning()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    splits = load_data(cfg.data)
    # the head starts where training starts it (model.head_init), so the range test sees the same loss surface
    model, _ = build_network(cfg, splits.num_classes, class_names=splits.class_names)
    module = Classifier(model, cfg, splits.train.class_counts())
    datamodule = build_datamodule(cfg, splits)
    accelerator = "gpu" if cfg.train.accelerator == "cuda" else cfg.train.accelerator
    bar = show_progress()  # Lightning's bar over the range test's steps, on a terminal only
    trainer = L.Trainer(accelerator=accelerator, devices=1, precision=cfg.train.precision, logger=False,
                        enable_checkpointing=False, enable_progress_bar=bar, enable_model_summary=False,
                        callbacks=[L.pytorch.callbacks.RichProgressBar(leave=False)] if bar else None,
                        default_root_dir=cfg.run_dir, use_distributed_sampler=False, max_epochs=1000)
    return module, datamodule, trainer


def suggest_lr(lrs: list[float], losses: list[float], skip_begin: int = 10) -> Optional[float]:
    """A tenth of the lr where the (smoothed) loss is lowest, skipping the first points.

    Lightning's own suggestion takes the steepest slope against the lr itself, not its logarithm,
    which on an exponential sweep favours the smallest lrs: on ELPV it proposed 7e-5 for SGD and Adam
    alike. The lowest point divided by ten (fastai's ``lr_min``) sits on the descending part of the
    curve, below where training becomes unstable.
    """
    points = [(lr, loss) for lr, loss in zip(lrs, losses) if math.isfinite(loss)][skip_begin:]
    if len(points) < 2:
        return None
    lowest_lr, _ = min(points, key=lambda p: p[1])
    return lowest_lr / 10


def find_lr(cfg: ExperimentConfig, out: Path, min_lr: float = 1e-7, max_lr: float = 1.0, steps: int = 100) -> LrFinding:
    """Exponential LR range test; saves the loss-vs-lr plot and returns a suggested lr (see ``suggest_lr``)."""
    from lightning.pytorch.tuner import Tuner

    module, datamodule, trainer = _setup(cfg.model_copy(update={"schedule": cfg.schedule.model_copy(update={"name": "none", "warmup_epochs": 0})}))
    finder = Tuner(trainer).lr_find(module, datamodule=datamodule, min_lr=min_lr, max_lr=max_lr,
                                    num_training=steps, update_attr=False, early_stop_threshold=None)
    lrs, losses = [float(x) for x in finder.results["lr"]], [float(x) for x in finder.results["loss"]]
    suggestion = suggest_lr(lrs, losses)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure, axes = plt.subplots(figsize=(6, 4))
    axes.plot(lrs, losses)
    axes.set_xscale("log")
    axes.set_xlabel("learning rate")
    axes.set_ylabel("training loss (smoothed)")
    if suggestion:
        axes.axvline(suggestion, color="tab:red", linestyle="--", label=f"suggested {suggestion:.2g}")
        axes.legend()
    figure.tight_layout()
    figure.savefig(out, dpi=100)
    plt.close(figure)
    return LrFinding(suggestion, out, lrs, losses)


def find_batch_size(cfg: ExperimentConfig, init: int = 2, max_trials: int = 10) -> int:
    """The largest batch size (powers of two from ``init``) whose training step fits in memory."""
    from lightning.pytorch.tuner import Tuner

    module, datamodule, trainer = _setup(cfg)
    datamodule.batch_size = init
    found = Tuner(trainer).scale_batch_size(module, datamodule=datamodule, mode="power", init_val=init,
                                            max_trials=max_trials, steps_per_trial=1)
    return int(found)

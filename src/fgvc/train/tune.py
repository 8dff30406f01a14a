"""Learning-rate range test and batch-size search, through Lightning's Tuner."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import lightning as L
import matplotlib

matplotlib.use("Agg")

from fgvc.config import ExperimentConfig  # noqa: E402
from fgvc.data import load_data  # noqa: E402
from fgvc.models.assembly import build_network  # noqa: E402
from fgvc.train.module import Classifier  # noqa: E402
from fgvc.train.run import build_datamodule, quiet_lightning  # noqa: E402


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
    model, _ = build_network(cfg, splits.num_classes)
    module = Classifier(model, cfg, splits.train.class_counts())
    datamodule = build_datamodule(cfg, splits)
    accelerator = "gpu" if cfg.train.accelerator == "cuda" else cfg.train.accelerator
    trainer = L.Trainer(accelerator=accelerator, devices=1, precision=cfg.train.precision, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=cfg.run_dir, use_distributed_sampler=False, max_epochs=1000)
    return module, datamodule, trainer


def find_lr(cfg: ExperimentConfig, out: Path, min_lr: float = 1e-7, max_lr: float = 1.0, steps: int = 100) -> LrFinding:
    """Exponential LR range test; saves the loss-vs-lr plot and returns the steepest-descent suggestion."""
    from lightning.pytorch.tuner import Tuner

    module, datamodule, trainer = _setup(cfg.model_copy(update={"schedule": cfg.schedule.model_copy(update={"name": "none", "warmup_epochs": 0})}))
    finder = Tuner(trainer).lr_find(module, datamodule=datamodule, min_lr=min_lr, max_lr=max_lr,
                                    num_training=steps, update_attr=False, early_stop_threshold=None)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure = finder.plot(suggest=True)
    figure.savefig(out, dpi=100)
    matplotlib.pyplot.close(figure)
    return LrFinding(finder.suggestion(), out, list(finder.results["lr"]), list(finder.results["loss"]))


def find_batch_size(cfg: ExperimentConfig, init: int = 2, max_trials: int = 10) -> int:
    """The largest batch size (powers of two from ``init``) whose training step fits in memory."""
    from lightning.pytorch.tuner import Tuner

    module, datamodule, trainer = _setup(cfg)
    datamodule.batch_size = init
    found = Tuner(trainer).scale_batch_size(module, datamodule=datamodule, mode="power", init_val=init,
                                            max_trials=max_trials, steps_per_trial=1)
    return int(found)

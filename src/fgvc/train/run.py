"""One config -> one run folder. Read top to bottom to follow an experiment from config to results.

RUN_DIR/
  config.yaml        the resolved config (what `--resume` and `fgvc eval` rebuild from)
  classes.json       class names, in label order
  history.csv        one row per epoch; learning_curves.png
  checkpoints/       best.ckpt, last.ckpt (Lightning), model.safetensors (plain weights, LoRA merged)
  metrics.json       val and test metrics, parameter counts, weights report, timings
  predictions_test.csv, confusion_matrix.png
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import lightning as L
import torch

from fgvc.config import ExperimentConfig, load_config
from fgvc.data import DataSplits, load_data
from fgvc.data.datamodule import FgvcDataModule
from fgvc.data.transforms import build_transform, resolve_normalization
from fgvc.errors import FgvcError
from fgvc.evaluate.runs import build_network, evaluate_split, load_trained
from fgvc.models.strategies import count_parameters, merge_lora
from fgvc.report.html import finish_run_folder
from fgvc.train.callbacks import EpochReseed, EpochSummary, FiniteLossGuard, GradualUnfreeze
from fgvc.train.module import Classifier


@dataclass
class RunResult:
    run_dir: Path
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def test(self) -> dict[str, Any]:
        return self.metrics.get("test", {})


def quiet_lightning() -> None:
    """Keep Lightning's start-up chatter (GPU/TPU lines, tips) out of fgvc's output."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")


def new_run_dir(cfg: ExperimentConfig) -> Path:
    """``output.dir/output.name``, or ``name-2``, ``name-3``... when that folder already holds a run."""
    base = cfg.run_dir
    candidate, n = base, 1
    while (candidate / "config.yaml").exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def build_datamodule(cfg: ExperimentConfig, splits: DataSplits) -> FgvcDataModule:
    norm = resolve_normalization(cfg.data.transforms, cfg.model)
    return FgvcDataModule(
        splits,
        train_transform=build_transform(cfg.data.transforms, norm, train=True),
        eval_transform=build_transform(cfg.data.transforms, norm, train=False),
        batch_size=cfg.train.batch_size,
        eval_batch_size=cfg.eval.batch_size,
        num_workers=cfg.data.num_workers,
        seed=cfg.seed,
        drop_last=cfg.data.mixup.enabled,
    )


def build_trainer(cfg: ExperimentConfig, run_dir: Path, callbacks: Sequence[L.Callback], has_val: bool,
                  progress: bool = True) -> L.Trainer:
    monitor = cfg.train.monitor if has_val else "train/loss"
    mode = "min" if "loss" in monitor else "max"
    callbacks = list(callbacks) + [
        L.pytorch.callbacks.ModelCheckpoint(
            dirpath=run_dir / "checkpoints", filename="best", monitor=monitor, mode=mode, save_last=True,
            auto_insert_metric_name=False, enable_version_counter=False,
        ),
    ]
    if cfg.train.early_stopping_patience:
        callbacks.append(L.pytorch.callbacks.EarlyStopping(monitor, patience=cfg.train.early_stopping_patience,
                                                           mode=mode, check_finite=True))
    if cfg.train.ema_decay:
        callbacks.append(L.pytorch.callbacks.EMAWeightAveraging(decay=cfg.train.ema_decay))
    if progress:
        callbacks.append(L.pytorch.callbacks.RichProgressBar(leave=False))
    accelerator = "gpu" if cfg.train.accelerator == "cuda" else cfg.train.accelerator
    return L.Trainer(
        default_root_dir=run_dir,
        max_epochs=cfg.train.epochs,
        accelerator=accelerator,
        devices=cfg.train.devices,
        num_nodes=cfg.train.num_nodes,
        strategy=cfg.train.strategy,
        precision=cfg.train.precision,
        accumulate_grad_batches=cfg.train.accumulate_grad_batches,
        gradient_clip_val=cfg.train.gradient_clip_val,
        deterministic=("warn" if torch.cuda.is_available() else True) if cfg.train.deterministic else False,
        callbacks=callbacks,
        logger=False,
        enable_progress_bar=progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,  # our EpochSampler shards by rank itself (resume-exact shuffling)
        limit_train_batches=cfg.train.limit_train_batches,
        limit_val_batches=cfg.train.limit_val_batches if has_val else 0,
    )


def train(cfg: ExperimentConfig, run_dir: Optional[Path] = None, resume: bool = False,
          callbacks: Sequence[L.Callback] = (), progress: bool = True) -> RunResult:
    """Fine-tune per ``cfg``, then evaluate the best checkpoint on val and test; returns the run's metrics."""
    started = time.perf_counter()
    quiet_lightning()
    run_dir = Path(run_dir) if run_dir else new_run_dir(cfg)
    if cfg.strategy.name == "features":  # frozen backbone once (cached), then only the head trains
        from fgvc.train.feature_probe import train_feature_probe

        return RunResult(run_dir, train_feature_probe(cfg, run_dir))
    last = run_dir / "checkpoints" / "last.ckpt"
    if resume and not last.is_file():
        raise FgvcError(f"cannot resume {run_dir}: no checkpoints/last.ckpt (the run stopped before its first "
                        "epoch ended); start it again without --resume")
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    # 1. data
    splits = load_data(cfg.data)
    datamodule = build_datamodule(cfg, splits)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(cfg.to_yaml())
    (run_dir / "classes.json").write_text(json.dumps(splits.class_names, indent=1))

    # 2. model: backbone + new head, pretrained weights, transfer strategy
    model, weights_report = build_network(cfg, splits.num_classes, pretrained=not resume)
    if weights_report is not None:
        print(weights_report)
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if cfg.train.compile:
        model.compile()
    module = Classifier(model, cfg, splits.train.class_counts())
    total, trainable = count_parameters(model)

    # 3. train (Lightning does precision, devices, accumulation, clipping, checkpoints)
    extra = [EpochReseed(cfg.seed), FiniteLossGuard(), EpochSummary(run_dir / "history.csv")]
    if cfg.strategy.name == "gradual":
        extra.append(GradualUnfreeze(cfg.strategy))
    has_val = splits.val is not None and len(splits.val) > 0
    trainer = build_trainer(cfg, run_dir, extra + list(callbacks), has_val, progress)
    trainer.fit(module, datamodule=datamodule, ckpt_path=str(last) if resume else None)
    if not trainer.is_global_zero:
        return RunResult(run_dir)
    train_seconds = time.perf_counter() - started

    # 4. evaluate the best checkpoint, write the run folder
    trained = load_trained(run_dir, "best")
    export = merge_lora(trained.model)
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in export.state_dict().items()}, run_dir / "checkpoints" / "model.safetensors")
    metrics: dict[str, Any] = {"run_dir": str(run_dir), "seed": cfg.seed, "epochs": trainer.current_epoch,
                               "parameters": {"total": total, "trainable": trainable},
                               "weights": str(weights_report) if weights_report else None,
                               "train_seconds": round(train_seconds, 2)}
    for split in ("val", "test"):
        images = getattr(splits, split)
        if images is not None and len(images) and images.is_labelled:
            metrics[split] = evaluate_split(trained, split, splits=splits)
    finish_run_folder(run_dir, metrics, splits.class_names)
    return RunResult(run_dir, metrics)


def resume(run_dir: Path, progress: bool = True) -> RunResult:
    """Continue a killed run from its last checkpoint, with the config it was started with."""
    cfg = load_config(Path(run_dir) / "config.yaml")
    return train(cfg, run_dir=Path(run_dir), resume=True, progress=progress)

"""One config -> one run folder (layout: :mod:`fgvc.runfolder`). Read top to bottom to follow an
experiment from config to results: data and model are built first, then the folder is claimed,
then Lightning trains, then the best checkpoint is evaluated on val and test."""

from __future__ import annotations

import contextlib
import logging
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import lightning as L
import torch

from fgvc.config import ExperimentConfig, load_config
from fgvc.data import DataSplits, load_data
from fgvc.data.datamodule import FgvcDataModule
from fgvc.data.decoded_cache import with_decoded_images
from fgvc.data.device_decode import EncodedImageDataset, Planner, collate_encoded
from fgvc.data.images import ImageList
from fgvc.data.transforms import build_transform, resolve_normalization
from fgvc.errors import FgvcError
from fgvc.evaluate.runs import evaluate_split, load_trained
from fgvc.models.assembly import build_network
from fgvc.models.strategies import count_parameters, merge_lora
from fgvc.report.html import finish_run_folder
from fgvc.progress import show_progress
from fgvc.train.callbacks import EpochProgressBar, EpochReseed, EpochSummary, FiniteLossGuard, GradualUnfreeze
from fgvc.runfolder import RunFolder, checkpoint_start_epoch, read_checkpoint
from fgvc.train.loggers import build_loggers
from fgvc.train.module import Classifier
from fgvc.train.recorded import recorded
from fgvc.train.stopping import StopOnSignal, StopRequest, stop_on_signals


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
    # the module normalises uint8 batches in on_after_batch_transfer on purpose
    warnings.filterwarnings("ignore", message=r".*overridden `on_(before|after)_batch_transfer`.*")
    # a resumed run writes into its own checkpoints folder on purpose
    warnings.filterwarnings("ignore", message=r".*Checkpoint directory .* exists and is not empty.*")


def build_datamodule(cfg: ExperimentConfig, splits: DataSplits, start_epoch: int = 0) -> FgvcDataModule:
    norm = resolve_normalization(cfg.data.transforms, cfg.model)
    if cfg.data.decoded_cache:
        splits = with_decoded_images(splits, cfg.data.transforms.resize, norm.interpolation, cfg.data.cache_dir,
                                     cfg.data.num_workers)
    factory, collate = None, None
    if cfg.data.jpeg_decode == "device":
        planners = {train: Planner(cfg.data.transforms, norm.interpolation, train) for train in (True, False)}

        def factory(images: ImageList, train: bool, seed: int) -> EncodedImageDataset:
            return EncodedImageDataset(images, planners[train], seed)

        collate = collate_encoded
    return FgvcDataModule(
        splits,
        train_transform=build_transform(cfg.data.transforms, norm, train=True, uint8=cfg.data.uint8_batches),
        eval_transform=build_transform(cfg.data.transforms, norm, train=False, uint8=cfg.data.uint8_batches),
        batch_size=cfg.train.batch_size,
        eval_batch_size=cfg.eval.batch_size,
        num_workers=cfg.data.num_workers,
        seed=cfg.seed,
        drop_last=cfg.data.mixup.enabled,
        start_epoch=start_epoch,
        dataset_factory=factory,
        collate_fn=collate,
    )


def build_trainer(cfg: ExperimentConfig, run_dir: Path, callbacks: Sequence[L.Callback], has_val: bool,
                  progress: bool = True) -> L.Trainer:
    monitor = cfg.train.monitor if has_val else "train/loss"
    mode = "min" if "loss" in monitor else "max"
    callbacks = list(callbacks) + [
        L.pytorch.callbacks.ModelCheckpoint(
            dirpath=RunFolder(run_dir).checkpoints, filename=RunFolder.BEST, monitor=monitor, mode=mode, save_last=True,
            auto_insert_metric_name=False, enable_version_counter=False,
        ),
    ]
    if cfg.train.early_stopping_patience:
        callbacks.append(L.pytorch.callbacks.EarlyStopping(monitor, patience=cfg.train.early_stopping_patience,
                                                           mode=mode, check_finite=True))
    if cfg.train.ema_decay:
        callbacks.append(L.pytorch.callbacks.EMAWeightAveraging(decay=cfg.train.ema_decay))
    progress = progress and show_progress()  # a bar on a terminal only: none in logs or Ray workers
    if progress:
        callbacks.append(EpochProgressBar(leave=False))
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
        logger=build_loggers(cfg, run_dir) or False,
        log_every_n_steps=10,
        enable_progress_bar=progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,  # our EpochSampler shards by rank itself (resume-exact shuffling)
        limit_train_batches=cfg.train.limit_train_batches,
        limit_val_batches=cfg.train.limit_val_batches if has_val else 0,
    )


def train(cfg: ExperimentConfig, run_dir: Optional[Path] = None, resume: bool = False,
          callbacks: Sequence[L.Callback] = (), progress: bool = True, checkpoint: str = RunFolder.LAST,
          evaluate: Sequence[str] = ("val", "test")) -> RunResult:
    """Fine-tune per ``cfg``, then evaluate the best checkpoint on val and test; returns the run's metrics.

    ``run_dir``: train into this folder (a group's member); by default a new folder is claimed.
    ``resume``: continue the run in ``run_dir`` from ``checkpoints/<checkpoint>.ckpt``.
    ``evaluate``: the splits the finished run is evaluated on (a search's trials never see test).
    """
    with torch_threads(cfg.train.threads):
        return _train(cfg, run_dir, resume, callbacks, progress, checkpoint, evaluate)


@contextlib.contextmanager
def torch_threads(count: Optional[int]) -> Iterator[None]:
    """Run with ``count`` torch threads (None: leave them), then put the previous count back."""
    before = torch.get_num_threads()
    if count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _train(cfg: ExperimentConfig, run_dir: Optional[Path], resume: bool, callbacks: Sequence[L.Callback],
           progress: bool, checkpoint: str, evaluate: Sequence[str]) -> RunResult:
    quiet_lightning()
    if cfg.strategy.name == "features":  # frozen backbone once (cached), then only the head trains
        from fgvc.train.feature_probe import train_feature_probe

        folder = RunFolder(run_dir) if run_dir else None
        return RunResult(*train_feature_probe(cfg, folder))
    if cfg.train.strategy == "pipeline":  # the model cut into stages over several processes
        from fgvc.train.pipeline_run import train_pipeline

        folder = RunFolder(run_dir) if run_dir else None
        if resume:
            read_resume_checkpoint(folder, checkpoint)  # one clear error when there is none to go on from
        return train_pipeline(cfg, folder, evaluate, folder.checkpoint(checkpoint) if resume else None)
    with stop_on_signals() as stop_request:
        start_epoch, folder = 0, RunFolder(run_dir) if run_dir else None
        if resume:
            start_epoch = checkpoint_start_epoch(read_resume_checkpoint(folder, checkpoint))
        # 1. data and 2. model, checked before a folder is claimed: a bad data set, model name or
        # weights file fails here and leaves nothing behind
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        splits = load_data(cfg.data)
        model, weights_report = build_network(cfg, splits.num_classes, pretrained=not resume)
        launched_rank = ddp_child_folder()
        if launched_rank is not None:  # a DDP rank that Lightning started: rank 0 owns the folder
            return _fit_and_evaluate(cfg, launched_rank, splits, model, weights_report, callbacks, progress,
                                     stop_request, launched_rank.checkpoint(checkpoint) if resume else None,
                                     start_epoch, evaluate)
        folder = folder or RunFolder.claim(cfg.run_dir)
        with recorded(folder, stop_request, resume_hint(folder)), shared_with_ranks(folder):
            if not resume:
                folder.write_header(cfg.to_yaml(), splits.class_names)
            return _fit_and_evaluate(cfg, folder, splits, model, weights_report, callbacks, progress, stop_request,
                                     folder.checkpoint(checkpoint) if resume else None, start_epoch, evaluate)


def _fit_and_evaluate(cfg: ExperimentConfig, folder: RunFolder, splits: DataSplits, model, weights_report,
                      callbacks: Sequence[L.Callback], progress: bool, stop_request: StopRequest,
                      checkpoint: Optional[Path], start_epoch: int,
                      evaluate: Sequence[str] = ("val", "test")) -> RunResult:
    started = time.perf_counter()
    if weights_report is not None:
        print(weights_report)
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if cfg.train.compile:
        model.compile()
    module = Classifier(model, cfg, splits.train.class_counts())
    total, trainable = count_parameters(model)
    datamodule = build_datamodule(cfg, splits, start_epoch)

    # 3. train (Lightning does precision, devices, accumulation, clipping, checkpoints)
    extra = [EpochReseed(cfg.seed), FiniteLossGuard(), EpochSummary(folder.history_file), StopOnSignal(stop_request)]
    if cfg.strategy.name == "gradual":
        extra.append(GradualUnfreeze(cfg.strategy))
    has_val = splits.val is not None and len(splits.val) > 0
    trainer = build_trainer(cfg, folder.path, extra + list(callbacks), has_val, progress)
    trainer.fit(module, datamodule=datamodule, ckpt_path=str(checkpoint) if checkpoint else None)
    if not trainer.is_global_zero:
        return RunResult(folder.path)
    train_seconds = time.perf_counter() - started
    return evaluate_and_finish(cfg, folder, splits, trainer.current_epoch, (total, trainable), weights_report,
                               train_seconds, evaluate)


def evaluate_and_finish(cfg: ExperimentConfig, folder: RunFolder, splits: DataSplits, epochs: int,
                        parameters: tuple[int, int], weights_report, train_seconds: float,
                        evaluate: Sequence[str] = ("val", "test")) -> RunResult:
    """4. Evaluate the best checkpoint, write the weights, metrics, plots, card and report."""
    total, trainable = parameters
    trained = load_trained(folder.path, RunFolder.BEST)
    export = merge_lora(trained.model)
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in export.state_dict().items()}, folder.weights_file)
    metrics: dict[str, Any] = {"run_dir": str(folder.path), "seed": cfg.seed, "epochs": epochs,
                               "parameters": {"total": total, "trainable": trainable},
                               "weights": str(weights_report) if weights_report else None,
                               "train_seconds": round(train_seconds, 2)}
    for split in evaluate:
        images = getattr(splits, split)
        if images is not None and len(images) and images.is_labelled:
            metrics[split] = evaluate_split(trained, split, splits=splits)
    finish_run_folder(folder.path, metrics, splits.class_names)
    return RunResult(folder.path, metrics)


RUN_DIR_ENV = "FGVC_RUN_DIR"


def ddp_child_folder() -> Optional[RunFolder]:
    """The run folder of rank 0 in a DDP rank that Lightning launched as a new process (it reruns the
    command with LOCAL_RANK / NODE_RANK set); None in rank 0 and in single-process runs."""
    rank = int(os.environ.get("LOCAL_RANK", "0")) + int(os.environ.get("NODE_RANK", "0"))
    path = os.environ.get(RUN_DIR_ENV)
    return RunFolder(path) if rank > 0 and path else None


@contextlib.contextmanager
def shared_with_ranks(folder: RunFolder) -> Iterator[None]:
    """Name the run folder in the environment while the run goes, for the ranks Lightning launches."""
    before = os.environ.get(RUN_DIR_ENV)
    os.environ[RUN_DIR_ENV] = str(folder.path)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(RUN_DIR_ENV, None)
        else:
            os.environ[RUN_DIR_ENV] = before


def resume_hint(folder: RunFolder) -> str:
    return f"fgvc train --resume {folder.path}"


def read_resume_checkpoint(folder: Optional[RunFolder], which: str = RunFolder.LAST) -> dict[str, Any]:
    """The checkpoint a resume starts from, or one clear error saying what to do instead."""
    if folder is None:
        raise FgvcError("resume needs the run folder")
    folder.require()
    path = folder.checkpoint(which)
    if not path.is_file() and which == RunFolder.LAST:
        raise FgvcError(f"cannot resume {folder.path}: no checkpoints/last.ckpt (the run stopped before its first "
                        "epoch ended); start it again without --resume")
    other = RunFolder.BEST if which == RunFolder.LAST else RunFolder.LAST
    advice = "start the run again without --resume"
    if folder.checkpoint(other).is_file():
        advice = f"resume from {other}.ckpt with `fgvc train --resume {folder.path} --checkpoint {other}`, or {advice}"
    return read_checkpoint(path, advice)


def resume(run_dir: Path, progress: bool = True, checkpoint: str = RunFolder.LAST,
           callbacks: Sequence[L.Callback] = (), evaluate: Sequence[str] = ("val", "test")) -> RunResult:
    """Continue a killed run from its last (or best) checkpoint, with the config it was started with."""
    folder = RunFolder(run_dir).require()
    cfg = load_config(folder.config_file)
    return train(cfg, run_dir=folder.path, resume=True, progress=progress, checkpoint=checkpoint,
                 callbacks=callbacks, evaluate=evaluate)

"""``train.engine: lightning`` (the default): the network fine-tuned epoch by epoch by a Lightning
Trainer, which does precision, devices (DDP, FSDP: ``train.distribution``), accumulation, clipping,
checkpoints and early stopping. The LightningModule (:class:`fgvc.train.module.Classifier`) says
what is computed; this page says how it runs.

Resume is exact: ``last.ckpt`` holds the optimizer, scheduler and loop state, and every epoch's
data order, augmentation and dropout are drawn from (seed, epoch).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator, Optional, Sequence

import lightning as L
import torch

from fgvc.config import ExperimentConfig
from fgvc.data import DataSplits
from fgvc.data.datamodule import FgvcDataModule
from fgvc.data.decoded_cache import with_decoded_images
from fgvc.data.device_decode import EncodedImageDataset, Planner, collate_encoded
from fgvc.data.images import ImageList
from fgvc.data.transforms import transforms_for
from fgvc.evaluate.runs import check_fitting, checkpoint_origin
from fgvc.models.assembly import build_network
from fgvc.models.head_init import head_init_metrics
from fgvc.models.strategies import count_parameters, opens_over_epochs
from fgvc.progress import show_progress
from fgvc.registry import register_engine
from fgvc.runfolder import RunFolder
from fgvc.train.callbacks import EpochProgressBar, EpochReseed, EpochSummary, FiniteLossGuard, GradualUnfreeze
from fgvc.train.checkpoint_io import AtomicCheckpointIO
from fgvc.train.engines.base import Engine
from fgvc.train.loggers import build_loggers
from fgvc.train.module import Classifier
from fgvc.train.result import Fitted
from fgvc.train.stopping import StopOnSignal, StopRequest
from fgvc.trust import loads_weights_only, read_checkpoint

RUN_DIR_ENV = "FGVC_RUN_DIR"


@register_engine("lightning", reports_epochs=True, head_init=True)
class LightningEngine(Engine):
    """fine-tuning epoch by epoch with a Lightning Trainer (DDP, FSDP, precision, accumulation)"""

    @classmethod
    def check_config(cls, cfg: ExperimentConfig) -> None:
        if cfg.train.distribution == "pipeline":
            raise ValueError("train.distribution: pipeline is train.engine: pipeline; set that instead")

    def prepare(self, splits: DataSplits, resume_from: Optional[Path]) -> None:
        super().prepare(splits, resume_from)
        # a resumed run's weights come from its checkpoint: no download, no weights file
        self.model, self.weights_report = build_network(self.cfg, splits.num_classes, pretrained=resume_from is None,
                                                        class_names=splits.class_names)
        if resume_from is not None:
            check_resumable(self.model, resume_from, self.cfg, splits.num_classes)

    def take_folder(self, folder: Optional[RunFolder]) -> tuple[RunFolder, bool]:
        launched = ddp_child_folder()
        if launched is not None:  # a DDP rank that Lightning started: rank 0 owns the folder
            return launched, False
        return super().take_folder(folder)

    def fit(self, folder: RunFolder, stop_request: StopRequest, resume_from: Optional[Path]) -> Optional[Fitted]:
        cfg, splits, model = self.cfg, self.splits, self.model
        if self.weights_report is not None:
            print(self.weights_report)
        if cfg.train.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if cfg.train.compile:
            model.compile()
        module = Classifier(model, cfg, splits.train.class_counts())
        parameters = count_parameters(model)
        datamodule = build_datamodule(cfg, splits, self.start_epoch)
        extra = [EpochReseed(cfg.seed), FiniteLossGuard(), EpochSummary(folder.history_file), StopOnSignal(stop_request)]
        if opens_over_epochs(cfg.strategy):
            extra.append(GradualUnfreeze(cfg.strategy))
        has_val = splits.val is not None and len(splits.val) > 0
        trainer = build_trainer(cfg, folder.path, extra + self.callbacks, has_val, self.progress)
        with shared_with_ranks(folder):
            trainer.fit(module, datamodule=datamodule, ckpt_path=str(resume_from) if resume_from else None,
                        weights_only=loads_weights_only())
        if not trainer.is_global_zero:
            return None
        return Fitted(trainer.current_epoch, parameters, self.weights_report,
                      extra=head_init_metrics(self.weights_report))


def check_resumable(model: torch.nn.Module, checkpoint_file: Path, cfg: ExperimentConfig, num_classes: int) -> None:
    """One line, before the Trainer loads it, when the checkpoint a resume goes on from holds another
    network than the run's config builds (a last.ckpt copied from another run, an edited config.yaml):
    Lightning's strict load would print a traceback with a line per mismatched tensor."""
    folder = RunFolder(Path(checkpoint_file).parent.parent)
    checkpoint = read_checkpoint(checkpoint_file, mmap=True)
    state = {k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items() if k.startswith("model.")}
    origin = checkpoint_origin(checkpoint)
    elsewhere = origin is not None and origin.path.resolve() != folder.path.resolve() and origin.path.is_dir()
    advice = (f"start the run again without --resume, or resume the run it was written in"
              f"{f' (`fgvc train --resume {origin.path}`)' if elsewhere else ''}")
    check_fitting(model, state, Path(checkpoint_file), folder, cfg, num_classes, advice, origin=origin)


def build_datamodule(cfg: ExperimentConfig, splits: DataSplits, start_epoch: int = 0) -> FgvcDataModule:
    """The training and evaluation loaders of ``cfg`` (decoded cache and device decoding included)."""
    transforms = transforms_for(cfg, uint8=cfg.data.uint8_batches)
    if cfg.data.decoded_cache:
        splits = with_decoded_images(splits, cfg.data.transforms.resize, transforms.norm.interpolation,
                                     cfg.data.cache_dir, cfg.data.num_workers)
    factory, collate = None, None
    if cfg.data.jpeg_decode == "device":
        planners = {train: Planner(cfg.data.transforms, transforms.norm.interpolation, train) for train in (True, False)}

        def factory(images: ImageList, train: bool, seed: int) -> EncodedImageDataset:
            return EncodedImageDataset(images, planners[train], seed)

        collate = collate_encoded
    return FgvcDataModule(
        splits,
        train_transform=transforms.train,
        eval_transform=transforms.eval,
        batch_size=cfg.train.batch_size,
        eval_batch_size=cfg.eval.batch_size,
        num_workers=cfg.data.num_workers,
        seed=cfg.seed,
        drop_last=cfg.data.mixup.enabled,
        start_epoch=start_epoch,
        dataset_factory=factory,
        collate_fn=collate,
    )


def lightning_trainer(cfg: ExperimentConfig, run_dir: Path, callbacks: Sequence[L.Callback], progress: bool = True,
                      **options) -> L.Trainer:
    """A Lightning Trainer with the config's epochs, accelerator, precision and batch limits, fgvc's
    quiet output and a progress bar on a terminal only; ``options`` set or override Trainer arguments
    (the classifier's and the generators' trainers differ in devices, loggers and checkpoints)."""
    callbacks = list(callbacks)
    progress = progress and show_progress()  # a bar on a terminal only: none in logs or Ray workers
    if progress:
        callbacks.append(EpochProgressBar(leave=False))
    arguments = dict(
        default_root_dir=run_dir,
        max_epochs=cfg.train.epochs,
        accelerator="gpu" if cfg.train.accelerator == "cuda" else cfg.train.accelerator,
        precision=cfg.train.precision,
        callbacks=callbacks,
        enable_progress_bar=progress,
        enable_model_summary=False,
        use_distributed_sampler=False,  # our EpochSampler shards by rank itself (resume-exact shuffling)
        limit_train_batches=cfg.train.limit_train_batches,
    )
    return L.Trainer(**{**arguments, **options})


def build_trainer(cfg: ExperimentConfig, run_dir: Path, callbacks: Sequence[L.Callback], has_val: bool,
                  progress: bool = True) -> L.Trainer:
    """The classifier's Trainer: best/last checkpoints on ``train.monitor``, early stopping, EMA,
    devices and distribution, loggers."""
    monitor = cfg.train.monitor if has_val else "train/loss"
    mode = "min" if "loss" in monitor else "max"
    # best.ckpt on the monitor; last.ckpt after every epoch, by a checkpoint of its own: Lightning's
    # save_last writes last.ckpt only when best.ckpt improves, and a resume would go back to the best epoch
    callbacks = list(callbacks) + [
        L.pytorch.callbacks.ModelCheckpoint(
            dirpath=RunFolder(run_dir).checkpoints, filename=RunFolder.BEST, monitor=monitor, mode=mode,
            auto_insert_metric_name=False, enable_version_counter=False,
        ),
        L.pytorch.callbacks.ModelCheckpoint(
            dirpath=RunFolder(run_dir).checkpoints, filename=RunFolder.LAST, monitor=None, save_top_k=1,
            auto_insert_metric_name=False, enable_version_counter=False,
        ),
    ]
    if cfg.train.early_stopping_patience:
        callbacks.append(L.pytorch.callbacks.EarlyStopping(monitor, patience=cfg.train.early_stopping_patience,
                                                           mode=mode, check_finite=True))
    if cfg.train.ema_decay:
        callbacks.append(L.pytorch.callbacks.EMAWeightAveraging(decay=cfg.train.ema_decay))
    return lightning_trainer(
        cfg, run_dir, callbacks, progress,
        devices=cfg.train.devices,
        num_nodes=cfg.train.num_nodes,
        strategy=cfg.train.distribution,
        accumulate_grad_batches=cfg.train.accumulate_grad_batches,
        gradient_clip_val=cfg.train.gradient_clip_val,
        deterministic=("warn" if torch.cuda.is_available() else True) if cfg.train.deterministic else False,
        logger=build_loggers(cfg, run_dir) or False,
        log_every_n_steps=10,
        num_sanity_val_steps=0,
        limit_val_batches=cfg.train.limit_val_batches if has_val else 0,
        plugins=[AtomicCheckpointIO()],  # fsynced in place: no fault destroys the last good checkpoint
    )


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

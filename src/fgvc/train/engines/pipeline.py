"""``train.engine: pipeline``: the network cut into ``train.pipeline.stages`` sequential stages, one per
process, trained with ``torch.distributed.pipelining`` (the stages' own loop:
:mod:`fgvc.train.pipeline_stages`). fgvc spawns the processes itself on one machine; under
``torchrun`` (several machines or GPUs) every rank runs ``fgvc train`` and rank 0 owns the folder.
The run folder is the same as any run's, and a resume is exact."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import torch.distributed as dist
from torch import nn

from fgvc.config import ExperimentConfig
from fgvc.data import DataSplits
from fgvc.errors import FgvcError
from fgvc.models.assembly import build_network
from fgvc.models.strategies import count_parameters
from fgvc.registry import STRATEGIES, register_engine
from fgvc.runfolder import RunFolder
from fgvc.trust import read_checkpoint
from fgvc.train.engines.base import Engine
from fgvc.train.pipeline_stages import choose_cuts, init_rank, spawn_stages, train_stage
from fgvc.train.result import Fitted
from fgvc.train.stopping import StopRequest


@register_engine("pipeline", reports_epochs=True)
class PipelineEngine(Engine):
    """the model cut into stages over several processes (torch.distributed.pipelining)"""

    @classmethod
    def check_config(cls, cfg: ExperimentConfig) -> None:
        """What a pipeline run cannot combine with, each named with the setting that conflicts."""
        t = cfg.train
        conflicts = {
            "data.mixup": cfg.data.mixup.enabled,
            "train.ema_decay": t.ema_decay is not None,
            "train.compile": t.compile,
            "train.accumulate_grad_batches > 1": t.accumulate_grad_batches > 1,
            "train.precision other than 32": t.precision != "32",
            f"strategy.name: {cfg.strategy.name}": not STRATEGIES.info(cfg.strategy.name).get("pipeline", True),
            "schedule.name: plateau": cfg.schedule.name == "plateau",
            "optim.l1 / optim.penalty_weight": bool(cfg.optim.l1 or cfg.optim.penalty_weight),
            "train.gradient_clip_val": t.gradient_clip_val is not None,
            "train.devices > 1 or train.num_nodes > 1 (DDP)": t.devices not in ("auto", 1) or t.num_nodes > 1,
            "train.distribution (Lightning's)": t.distribution != "auto",
            "data.jpeg_decode: device": cfg.data.jpeg_decode == "device",
        }
        named = [name for name, clash in conflicts.items() if clash]
        if named:
            raise ValueError(f"train.engine: pipeline cannot be combined with {', '.join(named)}; "
                             "remove it or train with train.engine: lightning")
        p = t.pipeline
        if t.batch_size % p.microbatches:
            raise ValueError(f"train.batch_size ({t.batch_size}) must split into train.pipeline.microbatches "
                             f"({p.microbatches}) equal micro-batches")
        if isinstance(p.split, list) and len(p.split) != p.stages - 1:
            raise ValueError(f"train.pipeline.split lists {len(p.split)} cut points; {p.stages} stages need "
                             f"{p.stages - 1}")

    def prepare(self, splits: DataSplits, resume_from: Optional[Path]) -> None:
        super().prepare(splits, resume_from)
        model, self.weights_report = build_network(self.cfg, splits.num_classes)  # a bad model fails here
        self.parameters = count_parameters(model)
        self.rank, self.world = torchrun_rank(self.cfg.train.pipeline.stages)
        if self.rank is not None:  # this process is one rank: join the others before anything is shared
            init_rank(self.cfg, self.rank, self.world, None)
        # rank 0 measures the split (or reads a resumed run's own); under torchrun the others get it
        self.cuts = run_cuts(self.cfg, model, splits.num_classes, resume_from) if not self.rank else None

    def take_folder(self, folder: Optional[RunFolder]) -> tuple[RunFolder, bool]:
        if self.rank is None:
            return super().take_folder(folder)
        # under torchrun rank 0 claims the folder; every rank must use the same folder and cuts
        shared = [self.cuts, str(super().take_folder(folder)[0].path)] if self.rank == 0 else [None, None]
        dist.broadcast_object_list(shared, src=0)
        self.cuts = shared[0]
        return RunFolder(shared[1]), self.rank == 0

    def fit(self, folder: RunFolder, stop_request: StopRequest, resume_from: Optional[Path]) -> Optional[Fitted]:
        if self.rank is None:  # fgvc starts one process per stage on this machine
            spawn_stages(self.cfg, self.cfg.train.pipeline.stages, folder, self.cuts, resume_from)
            epochs = len(folder.history()) if folder.history_file.is_file() else 0
        else:
            epochs = train_stage(self.cfg, self.rank, self.world, folder, self.cuts, resume_from)
            dist.destroy_process_group()
        return Fitted(epochs, self.parameters, self.weights_report) if not self.rank else None


def torchrun_rank(stages: int) -> tuple[Optional[int], Optional[int]]:
    """(rank, world size) when torchrun started this process as one rank, else (None, None)."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return None, None
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    if world != stages:
        raise FgvcError(f"torchrun started {world} processes for train.pipeline.stages={stages}: "
                        f"use --nproc-per-node {stages} (times the nodes)")
    return rank, world


def run_cuts(cfg: ExperimentConfig, model: nn.Module, num_classes: int, resume_from: Optional[Path]) -> list[int]:
    """The cut points: a resumed run keeps its own (its optimizers' states belong to those stages)."""
    if resume_from is not None:
        saved = read_checkpoint(resume_from, "start the run again", mmap=True)  # weights only (fgvc.trust)
        if "pipeline_cuts" not in saved:
            raise FgvcError(f"{resume_from} was written by an fgvc that could not resume pipeline runs (no "
                            "optimizer states in it); start the run again")
        return list(saved["pipeline_cuts"])
    return choose_cuts(cfg, model, num_classes)

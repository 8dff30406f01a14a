"""What a training engine is: built from the config, checked before any folder exists, then fit
into a claimed run folder; :func:`fgvc.train.run.train` does the rest (claim, header, record, the
shared finish). A new way to train is one file in this folder: a subclass registered with
``@register_engine(name)``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional, Sequence

import lightning as L

from fgvc.config import ExperimentConfig
from fgvc.data import DataSplits
from fgvc.errors import ConfigError, FgvcError
from fgvc.launcher import claim_or_join
from fgvc.runfolder import RunFolder
from fgvc.trust import checkpoint_start_epoch, read_checkpoint
from fgvc.train.result import Fitted
from fgvc.train.stopping import StopRequest


class Engine:
    """One way to train a run. Subclasses fill in :meth:`prepare` and :meth:`fit`; the rest has
    defaults that fit a single process writing Lightning-format checkpoints.

    Registration details the config reads (``@register_engine(name, ...)``): ``settings``, the config
    sections only this engine reads (refused under another engine); ``reads``, sections of another
    engine it reads too (the CLIP tower of ``zero_shot``); ``strategy``, the default
    ``strategy.name`` under this engine; ``reports_epochs``, whether each epoch is validated (a
    search can prune it)."""

    def __init__(self, cfg: ExperimentConfig, callbacks: Sequence[L.Callback] = (), progress: bool = True):
        self.cfg, self.callbacks, self.progress = cfg, list(callbacks), progress
        self.splits: Optional[DataSplits] = None
        self.start_epoch = 0  # a resumed run's first epoch (set by resume_point)

    @classmethod
    def check_config(cls, cfg: ExperimentConfig) -> None:
        """Raise ValueError naming every setting this engine cannot combine with (config time)."""

    def resume_point(self, folder: Optional[RunFolder], which: str) -> Optional[Path]:
        """The checkpoint a resume of ``folder`` goes on from, or one clear error saying what to do."""
        if folder is None:
            raise FgvcError("resume needs the run folder")
        folder.require()
        path = folder.checkpoint(which)
        recorded = folder.history_epochs()
        if not path.is_file() and which == RunFolder.LAST:
            why = (f"{folder.HISTORY} records {epoch_span(recorded)}, but the run stopped before that epoch's "
                   "checkpoint was written" if recorded else "the run stopped before its first epoch ended")
            raise FgvcError(f"cannot resume {folder.path}: no {path.relative_to(folder.path)} ({why}); start it "
                            "again without --resume")
        other = RunFolder.BEST if which == RunFolder.LAST else RunFolder.LAST
        advice = "start the run again without --resume"
        if folder.checkpoint(other).is_file():
            advice = (f"resume from {folder.checkpoint(other).name} with `fgvc train --resume {folder.path} "
                      f"--checkpoint {other}`, or {advice}")
        # a missing, empty or truncated file is one clear error here, before anything is built
        # memory-mapped: only the loop counters are read here; Lightning reads the tensors once, later
        self.start_epoch = checkpoint_start_epoch(read_checkpoint(path, advice, mmap=True))
        ahead = [epoch for epoch in recorded if epoch >= self.start_epoch]
        if ahead:  # stopped between an epoch's history row and its checkpoint: the checkpoint decides
            print(f"resuming {folder.path} from {path.relative_to(folder.path)} (after epoch {self.start_epoch - 1}); "
                  f"{folder.HISTORY} also records {epoch_span(ahead)}, whose checkpoint was not written: "
                  f"training goes on from epoch {self.start_epoch} and replaces those rows", file=sys.stderr)
        return path

    def prepare(self, splits: DataSplits, resume_from: Optional[Path]) -> None:
        """Build what training needs (the model first): a bad model, weights file or setting fails
        here, before a run folder is claimed."""
        self.splits = splits
        k, monitor = self.cfg.eval.top_k, self.cfg.train.monitor
        if monitor == f"val/top{k}" and k >= splits.num_classes:  # top-k of k >= classes is 1 and not reported
            raise ConfigError(f"train.monitor {monitor}: {splits.num_classes} classes make top-{k} accuracy 1 by "
                              "construction, so runs do not report it; monitor val/top1, val/f1_macro or val/loss")

    def take_folder(self, folder: Optional[RunFolder]) -> tuple[RunFolder, bool]:
        """(the run folder, whether this process owns it: records its status, writes the header,
        finishes it). By default a new folder is claimed unless one is given; ranks started by a cluster
        launcher (srun, torchrun) use the folder rank 0 claims, and only rank 0 owns it."""
        return claim_or_join(self.cfg.run_dir, folder)

    def fit(self, folder: RunFolder, stop_request: StopRequest, resume_from: Optional[Path]) -> Optional[Fitted]:
        """Train into ``folder``; what the finish needs, or None in a process that does not finish."""
        raise NotImplementedError


def epoch_span(epochs: list[int]) -> str:
    """Some epochs in words ("epoch 3", "epochs 0-2"), numbered as history.csv numbers them."""
    return f"epoch {epochs[0]}" if len(epochs) == 1 else f"epochs {min(epochs)}-{max(epochs)}"

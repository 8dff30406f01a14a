"""One config -> one run folder (layout: :mod:`fgvc.runfolder`). Read top to bottom to follow an
experiment from config to results: the engine (``train.engine``: :mod:`fgvc.train.engines`) is
chosen, data and model are built and checked, then the folder is claimed, its header written and
its status recorded, the engine fits, and one shared finish (:mod:`fgvc.train.result`) evaluates
and writes metrics, predictions, report and card, whichever engine trained."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Iterator, Optional, Sequence

import lightning as L
import torch

from fgvc.config import ExperimentConfig, load_config
from fgvc.cpu_memory import keep_cpu_memory
from fgvc.data import load_data
from fgvc.data.readable import count_by_split, readable_splits
from fgvc.errors import FgvcError
from fgvc.registry import ENGINES
from fgvc.runfolder import RunFolder
from fgvc.train.quiet import quiet_lightning
from fgvc.train.recorded import recorded
from fgvc.train.result import RunResult, finish
from fgvc.train.stopping import StopRequest, stop_on_signals


def train(cfg: ExperimentConfig, run_dir: Optional[Path] = None, resume: bool = False,
          callbacks: Sequence[L.Callback] = (), progress: bool = True, checkpoint: str = RunFolder.LAST,
          evaluate: Sequence[str] = ("val", "test")) -> RunResult:
    """Train per ``cfg`` with its engine, then evaluate on val and test; returns the run's metrics.

    ``run_dir``: train into this folder (a group's member); by default a new folder is claimed.
    ``resume``: continue the run in ``run_dir`` from ``checkpoints/<checkpoint>.ckpt``.
    ``evaluate``: the splits the finished run is evaluated on (a search's trials never see test).
    """
    with torch_threads(cfg.train.threads):
        keep_cpu_memory(cfg.train.keep_cpu_memory)  # process-wide: freed activations reused, not faulted in
        quiet_lightning()
        engine = ENGINES.get(cfg.train.engine)(cfg, callbacks, progress)
        folder = RunFolder(run_dir) if run_dir else None
        if resume:
            refuse_finished(cfg, folder)
        resume_from = engine.resume_point(folder, checkpoint) if resume else None
        # 0. a folder that cannot be written (read-only, or under a file) fails here, before any work
        RunFolder.check_writable(folder.path if folder else cfg.run_dir, "make the run folder writable, or copy it "
                                 "where you can write and resume the copy" if resume else "set output.dir to a folder "
                                 "you can write to")
        with stop_on_signals() as stop_request:
            # 1. data and 2. model, checked before a folder is claimed: a bad data set, model name or
            # weights file fails here and leaves nothing behind
            L.seed_everything(cfg.seed, workers=True, verbose=False)
            splits = load_data(cfg.data)
            # every image file readable (cached per file), or left out with data.skip_unreadable
            splits, unreadable = readable_splits(splits, cfg.data.cache_dir, cfg.data.skip_unreadable,
                                                 cfg.data.num_workers)
            engine.prepare(splits, resume_from)
            folder, owner = engine.take_folder(folder)
            if not owner:  # another process (rank 0) records and finishes this run
                engine.fit(folder, stop_request, resume_from)
                return RunResult(folder.path)
            # 3. the folder's header and status, 4. the engine trains, 5. the shared finish
            with recorded_run(cfg, folder, splits.class_names, stop_request, header=resume_from is None):
                if unreadable:
                    listed = folder.write_unreadable([(u.split, u.image, u.error) for u in unreadable])
                    print(f"data.skip_unreadable: left out {len(unreadable)} unreadable image"
                          f"{'s' if len(unreadable) > 1 else ''} ({count_by_split(unreadable)}); listed in {listed}")
                started = time.perf_counter()
                fitted = engine.fit(folder, stop_request, resume_from)
                return finish(cfg, folder, splits, fitted, time.perf_counter() - started, evaluate)


@contextlib.contextmanager
def recorded_run(cfg: ExperimentConfig, folder: RunFolder, class_names: list[str], stop_request: StopRequest,
                 header: bool = True, resume_command: Optional[str] = None) -> Iterator[RunFolder]:
    """The folder locked and its status kept (running, then finished, failed or stopped with what is
    on disk and ``resume_command``), with config.yaml and classes.json written first unless ``header``
    is False (a resume)."""
    with recorded(folder, stop_request, resume_command or resume_hint(folder)):
        if header:
            folder.write_header(cfg.to_yaml(), class_names)
        yield folder


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


def refuse_finished(cfg: ExperimentConfig, folder: Optional[RunFolder]) -> None:
    """A finished run (run.json says so, metrics.json is there) is not trained again by a resume, which
    would rewrite its metrics: one line saying what to do instead."""
    if folder is None or folder.status().get("status") != "finished" or not folder.metrics_file.is_file():
        return
    epochs = folder.history_epochs()
    at = f" at epoch {max(epochs) + 1}/{cfg.train.epochs}" if epochs else ""
    longer = (f"train longer with a new config from its weights: `fgvc train {folder.config_file} --set "
              f"train.epochs=MORE --set model.pretrained=true --set model.pretrained_file={folder.weights_file}`"
              if folder.weights_file.is_file() else "train longer with a new config that sets a larger train.epochs")
    raise FgvcError(f"{folder.path} finished{at} (run.json: finished); nothing to resume. Start a new run with "
                    f"`fgvc train {folder.config_file}`, or {longer}")


def resume_hint(folder: RunFolder) -> str:
    return f"fgvc train --resume {folder.path}"


def resume(run_dir: Path, progress: bool = True, checkpoint: str = RunFolder.LAST,
           callbacks: Sequence[L.Callback] = (), evaluate: Sequence[str] = ("val", "test")) -> RunResult:
    """Continue a killed run from its last (or best) checkpoint, with the config it was started with."""
    folder = RunFolder(run_dir).require()
    cfg = load_config(folder.config_file)
    return train(cfg, run_dir=folder.path, resume=True, progress=progress, checkpoint=checkpoint,
                 callbacks=callbacks, evaluate=evaluate)

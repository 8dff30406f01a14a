"""Stratified k-fold cross-validation of the training part, optionally retraining on all folds."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from fgvc.config import ExperimentConfig
from fgvc.experiments.executors import LocalExecutor
from fgvc.experiments.groups import check_member_config, member_config, summarize_group, write_group
from fgvc.experiments.jobs import Executor, MemberJob
from fgvc.groupfolder import GroupFolder
from fgvc.report.html import group_report


def crossval(cfg: ExperimentConfig, folds: int, group_dir: Optional[Path] = None, retrain: bool = False,
             confidence: float = 0.95, progress: bool = False, log: Callable[[str], None] = print,
             executor: Optional[Executor] = None) -> dict:
    """Train one run per fold (fold k is the val split, ``data.split_seed`` fixes the folds); the summary
    aggregates the folds. ``retrain`` then trains on all folds together (GROUP/final).
    ``executor``: where the folds train (default: one after another in this process)."""
    executor = executor or LocalExecutor()
    group_dir = Path(group_dir or Path(cfg.output.dir) / f"{cfg.output.name or 'run'}-cv{folds}")
    members = {GroupFolder.fold_member(k): {"fold": k, "seed": cfg.seed} for k in range(folds)}
    jobs = [MemberJob(member_config(cfg, [f"data.folds={folds}", f"data.fold={info['fold']}",
                                          f"output.dir={group_dir}", f"output.name={name}"]), group_dir / name)
            for name, info in members.items()]
    if retrain:  # independent of the folds: it trains beside them
        final = member_config(cfg, ["data.folds=null", "data.fold=null", "data.val_fraction=0",
                                    f"output.dir={group_dir}", f"output.name={GroupFolder.FINAL}"])
        jobs.append(MemberJob(final, group_dir / GroupFolder.FINAL))
    for job in jobs:  # a member of another recipe is refused before group.json is (re)written
        check_member_config(job.config, job.run_dir)
    write_group(group_dir, "crossval", cfg, members)
    results = executor.run(jobs, progress, log)
    summary = summarize_group(group_dir, confidence, only=list(members))
    group_report(group_dir)
    if retrain:
        summary["final"] = results[-1]
    return summary

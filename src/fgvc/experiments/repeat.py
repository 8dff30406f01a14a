"""Run one config over several seeds and report every metric with a confidence interval."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Callable, Optional, Sequence

from fgvc.config import ExperimentConfig
from fgvc.errors import FgvcError
from fgvc.experiments.executors import LocalExecutor
from fgvc.experiments.groups import check_member_config, member_config, summarize_group, write_group
from fgvc.experiments.jobs import Executor, MemberJob
from fgvc.groupfolder import GroupFolder
from fgvc.report.html import group_report
from fgvc.locks import file_lock, lock_beside


def parse_seeds(text: str, base_seed: int) -> list[int]:
    """'5' -> five seeds from the config's seed on; '1,7,42' -> those seeds; '7,' -> seed 7 alone; anything
    else one clear error."""
    text = text.strip()
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()] if "," in text else None
        count = int(text) if seeds is None else len(seeds)
    except ValueError:
        raise FgvcError(f"--seeds {text!r}: give a count (5) or a list of seeds (1,7,42)") from None
    if count < 1:
        hint = f"; for the seed {text} alone write --seeds {text}, (a list)" if seeds is None and text else ""
        raise FgvcError(f"--seeds {text!r}: give at least one seed{hint}")
    return seeds if seeds is not None else [base_seed + i for i in range(count)]


def draw_seeds(count: int) -> list[int]:
    return [secrets.randbelow(2 ** 31 - 1) for _ in range(count)]


def plan_repeat(cfg: ExperimentConfig, seeds: Sequence[int], group_dir: Optional[Path] = None,
                vary: Sequence[str] = ("seed",), label: str = "") -> tuple[Path, list[MemberJob]]:
    """Write GROUP/group.json and return the member jobs (one per seed) an executor runs.

    Random seeds that were drawn earlier are kept in group.json, so a rerun of the same group
    reuses them. ``label`` prefixes the members' names in messages (a sweep's cell, a study's arm)."""
    group_dir = Path(group_dir or Path(cfg.output.dir) / f"{cfg.output.name or 'run'}-repeat")
    existing = GroupFolder(group_dir).group_file
    make_group_dir(group_dir)
    # read, merge and rewrite group.json under a lock: two repeats of one group started together (each
    # with seeds drawn at random) keep each other's members
    with file_lock(lock_beside(existing)):
        if existing.is_file():
            recorded = json.loads(existing.read_text())["members"]
            seeds = list(dict.fromkeys([*(m["seed"] for m in recorded.values()), *seeds]))
        members = {GroupFolder.seed_member(s): {"seed": s, **({"vary": list(vary)} if tuple(vary) != ("seed",) else {})}
                   for s in seeds}
        jobs = []
        for name, info in members.items():
            varied = [f"{key}={info['seed']}" for key in vary]
            member = member_config(cfg, [*varied, f"output.dir={group_dir}", f"output.name={name}"])
            jobs.append(MemberJob(member, group_dir / name, f"{label}/{name}" if label else name))
        for job in jobs:  # a member of another recipe is refused before group.json is (re)written
            check_member_config(job.config, job.run_dir)
        write_group(group_dir, "repeat", cfg, members)
    return group_dir, jobs


def make_group_dir(group_dir: Path) -> None:
    try:
        group_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FgvcError(f"cannot make the group folder {group_dir}: {exc.strerror or exc}; "
                        "choose another --out or output.dir") from None


def finish_repeat(group_dir: Path, jobs: Sequence[MemberJob], confidence: float = 0.95, bootstrap: int = 0) -> dict:
    """The group's summary.json and report.html, over the members of ``jobs``."""
    summary = summarize_group(group_dir, confidence, bootstrap, only=[job.run_dir.name for job in jobs])
    group_report(group_dir)
    return summary


def repeat(cfg: ExperimentConfig, seeds: Sequence[int], group_dir: Optional[Path] = None, confidence: float = 0.95,
           bootstrap: int = 0, progress: bool = False, log: Callable[[str], None] = print,
           vary: Sequence[str] = ("seed",), executor: Optional[Executor] = None) -> dict:
    """Train ``cfg`` once per seed into GROUP/seed-N (finished seeds are reused, killed ones resumed)
    and return the group summary.

    ``vary``: the config keys each member sets to its seed; e.g. ``("seed", "data.split_seed",
    "data.test_split_seed")`` also draws other train/val and test splits, for the split-to-split
    variance of a recipe (a deterministic one, such as the logistic-regression probe, has no other).
    ``executor``: where the members train (default: one after another in this process)."""
    group_dir, jobs = plan_repeat(cfg, seeds, group_dir, vary)
    (executor or LocalExecutor()).run(jobs, progress, log)
    return finish_repeat(group_dir, jobs, confidence, bootstrap)

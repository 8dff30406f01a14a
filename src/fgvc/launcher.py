"""Ranks started by a cluster launcher that runs the whole command once per rank (``srun`` with one
task per GPU, ``torchrun``): rank 0 claims the run folder (:meth:`fgvc.runfolder.RunFolder.claim`
with the launch's id in run.json) and every other rank finds that folder and trains into it, so one
run has one folder. The ranks Lightning starts itself are told their folder another way
(FGVC_RUN_DIR, :mod:`fgvc.train.engines.lightning`). Like :mod:`fgvc.runfolder`, every layer may use it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Optional

from fgvc.runfolder import RunFolder, RunFolderError

LAUNCH_WAIT_ENV = "FGVC_LAUNCH_WAIT"  # seconds a rank waits for rank 0's run folder (default 600)


def _process_start() -> float:
    """When this process started (Linux: from /proc; elsewhere: when this module was imported)."""
    try:
        with open("/proc/self/stat") as stat, open("/proc/stat") as system:
            ticks = int(stat.read().rsplit(")", 1)[1].split()[19])  # field 22, starttime (after the name)
            boot = next(float(line.split()[1]) for line in system if line.startswith("btime"))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return time.time()


_STARTED = _process_start()  # a launch's ranks start together; rank 0 claims after this


def launcher_rank() -> Optional[tuple[int, int, str]]:
    """(rank, world size, launch id) when a launcher started this whole command once per rank: torchrun
    (RANK, WORLD_SIZE) or srun with several tasks (SLURM_PROCID, SLURM_NTASKS); else None. (The ranks
    Lightning starts itself are told their folder another way: FGVC_RUN_DIR.)"""
    env = os.environ
    if "RANK" in env and "WORLD_SIZE" in env and int(env["WORLD_SIZE"]) > 1:
        launch = ":".join(env.get(k, "") for k in ("TORCHELASTIC_RUN_ID", "MASTER_ADDR", "MASTER_PORT",
                                                   "TORCHELASTIC_RESTART_COUNT"))
        return int(env["RANK"]), int(env["WORLD_SIZE"]), f"torchrun:{launch}"
    if "SLURM_PROCID" in env and int(env.get("SLURM_NTASKS", "1")) > 1:
        launch = f"{env.get('SLURM_JOB_ID', '')}.{env.get('SLURM_STEP_ID', '')}"
        return int(env["SLURM_PROCID"]), int(env["SLURM_NTASKS"]), f"slurm:{launch}"
    return None


def secondary_rank() -> bool:
    """Whether this process is a rank other than 0 of a run many processes train (a launcher's, or one
    Lightning started): it neither claims, records, reserves nor deletes a run folder."""
    launch = launcher_rank()
    if launch is not None:
        return launch[0] > 0
    return int(os.environ.get("LOCAL_RANK", "0")) + int(os.environ.get("NODE_RANK", "0")) > 0


def claim_or_join(base: Path | str, folder: Optional[RunFolder] = None) -> tuple[RunFolder, bool]:
    """(the run folder, whether this process owns it). A given ``folder`` is used as it is; otherwise a
    new one is claimed, except under a cluster launcher, where rank 0 claims it and every other rank
    waits for rank 0's folder and uses it."""
    launch = launcher_rank()
    if launch is None:
        return folder or RunFolder.claim(base), True
    rank, world, launch_id = launch
    if folder is not None:
        return folder, rank == 0
    if rank == 0:
        return RunFolder.claim(base, launch=launch_id), True
    return _join(Path(base), launch_id, rank, world), False


def _join(base: Path, launch_id: str, rank: int, world: int) -> RunFolder:
    """Rank 0's folder of this launch: the newest folder under ``base`` whose run.json names the launch,
    claimed after this process started (a stale folder of an earlier launch with the same id is older)."""
    wait = float(os.environ.get(LAUNCH_WAIT_ENV, "600"))
    deadline = time.monotonic() + wait
    while True:
        found = []
        for candidate in RunFolder.candidates(base):
            if not candidate.exists():
                break
            launch = RunFolder(candidate).status().get("launch") or {}
            if launch.get("id") == launch_id and launch.get("at", 0) >= _STARTED - 300:
                found.append((launch["at"], candidate))
        if found:
            return RunFolder(max(found)[1])
        if time.monotonic() > deadline:
            raise RunFolderError(f"rank {rank} of {world} ({launch_id}): rank 0 claimed no run folder under {base} "
                                 f"within {wait:g} s; did rank 0 fail? (its error says why; {LAUNCH_WAIT_ENV} sets "
                                 "how long the other ranks wait)")
        time.sleep(0.2)

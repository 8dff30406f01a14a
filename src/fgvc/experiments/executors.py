"""Where a group's runs train: the experiment says *what* to run (a list of member jobs), the executor
*where*. ``local`` trains them one after another in this process (no Ray import); ``ray`` sends each
to a Ray worker (:mod:`fgvc.experiments.ray_executor`). Either way a member writes exactly the run
folder it would write alone, finished members are reused and killed ones resume. The jobs and the
executor protocol are in :mod:`fgvc.experiments.jobs`, which both executors import (not each other)."""

from __future__ import annotations

import os
from typing import Any, Optional, Sequence

from pydantic import ValidationError

from fgvc.config import ExecutorConfig, ExperimentConfig
from fgvc.errors import ConfigError
from fgvc.experiments.groups import run_member
from fgvc.experiments.jobs import Executor, Log, MemberJob

EXECUTOR_ENV = "FGVC_EXECUTOR"
ADDRESS_ENV = "FGVC_RAY_ADDRESS"


class LocalExecutor:
    """Today's behaviour: one member after another in this process; the first error ends the group."""

    name = "local"

    def run(self, jobs: Sequence[MemberJob], progress: bool = False, log: Log = print) -> list[dict[str, Any]]:
        return [run_member(job.config, job.run_dir, progress, log, job.name) for job in jobs]


def executor_settings(cfg: Optional[ExperimentConfig] = None, name: Optional[str] = None,
                      address: Optional[str] = None, cpus_per_trial: Optional[float] = None,
                      gpus_per_trial: Optional[float] = None) -> ExecutorConfig:
    """The executor a group uses: explicit arguments (the CLI's options) over the environment
    (FGVC_EXECUTOR, FGVC_RAY_ADDRESS) over the config's ``executor`` section."""
    base = (cfg.executor if cfg is not None else ExecutorConfig()).model_dump()
    chosen = {
        "name": name or os.environ.get(EXECUTOR_ENV) or base["name"],
        "address": address or os.environ.get(ADDRESS_ENV) or base["address"],
        "cpus_per_trial": cpus_per_trial if cpus_per_trial is not None else base["cpus_per_trial"],
        "gpus_per_trial": gpus_per_trial if gpus_per_trial is not None else base["gpus_per_trial"],
        "max_retries": base["max_retries"],
    }
    if chosen["name"] not in ("local", "ray"):
        source = "--executor" if name else (EXECUTOR_ENV if os.environ.get(EXECUTOR_ENV) else "executor.name")
        raise ConfigError(f"{source}: unknown executor {chosen['name']!r}; choose local or ray")
    try:
        return ExecutorConfig(**chosen)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = str(error["loc"][0])
        raise ConfigError(f"--{key.replace('_', '-')} / executor.{key}: {error['msg']} "
                          f"(got {error.get('input')!r})") from None


def make_executor(settings: ExecutorConfig) -> Executor:
    """The executor ``settings`` name; Ray is imported only for ``ray``."""
    if settings.name == "local":
        return LocalExecutor()
    from fgvc.experiments.ray_executor import RayExecutor

    return RayExecutor(settings)

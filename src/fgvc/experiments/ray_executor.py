"""The ``ray`` executor: each member of a group is a Ray task on its own worker.

A task sets its torch thread count from its CPU share, then does what the local executor does
(:func:`fgvc.experiments.groups.run_member`): reuse, resume or train, into the same run folder.
A task whose worker dies (killed, out of memory, a lost node) is started again by Ray up to
``executor.max_retries`` times, and the new attempt resumes from the member's last checkpoint.
Run folders live under ``output.dir``; on a cluster that must be storage every node mounts at the
same path (NFS), which is checked before the first member starts.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import uuid
from pathlib import Path
from typing import Any, Iterator, Sequence

from fgvc.config import ExecutorConfig
from fgvc.errors import FgvcError, RunStopped
from fgvc.experiments.groups import check_member_config
from fgvc.experiments.jobs import Log, MemberJob
from fgvc.runfolder import RunFolder
from fgvc.train.stopping import interruptible

INSTALL_HINT = "pip install 'fgvc[ray]'"
WAIT_SECONDS = 1.0  # how long the driver waits on Ray at a time before Ctrl-C can reach it


def require_ray():
    try:
        import ray
    except ImportError:
        raise FgvcError(f"--executor ray needs Ray, which is not installed: {INSTALL_HINT} "
                        "(or use --executor local)") from None
    return ray


RAY_AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"


@contextlib.contextmanager
def _quiet_default_auth_notice() -> Iterator[None]:
    """Ray logs a warning on every start of a local instance that it turned on its (secure) default, token
    authentication; fgvc keeps the default and drops that one line from normal output. Every other line,
    including the warning that authentication is *off*, still shows."""

    def keep(record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Token authentication is enabled for this Ray cluster")

    logger = logging.getLogger(RAY_AUTH_LOGGER)
    logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)


@contextlib.contextmanager
def ray_session(settings: ExecutorConfig) -> Iterator[Any]:
    """Connect to ``settings.address`` (none: start a local Ray instance) unless this process is
    connected already; a local instance started here is shut down at the end."""
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    try:
        with _quiet_default_auth_notice():
            ray.init(address=settings.address, include_dashboard=False, log_to_driver=True,
                     configure_logging=True, logging_level="warning")
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = settings.address or "a local Ray instance"
        raise FgvcError(f"cannot connect to {where}: {str(exc).splitlines()[0]}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def _check_writable(directory: str) -> str:
    """Make ``directory`` and write a probe file in it; the name of the file (the driver looks for it)."""
    path = Path(directory)
    probe = path / f".fgvc-storage-{uuid.uuid4().hex}"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe.write_text(socket.gethostname())
    except OSError as exc:
        raise FgvcError(f"a Ray worker on {socket.gethostname()} cannot write to {directory} ({exc.strerror or exc}); "
                        "output.dir must be writable by every worker: on a cluster, storage every node mounts at "
                        "the same path (e.g. NFS)") from None
    return str(probe)


def enter_worker(cwd: str, cpus: float) -> None:
    """A Ray worker's set-up for a run: the driver's working directory (relative data paths mean what
    they mean on the driver, on the same machine or shared storage) and torch threads from its CPU
    share (the run's train.threads, when set, wins)."""
    import torch

    if os.path.isdir(cwd):
        os.chdir(cwd)
    torch.set_num_threads(max(1, int(cpus)))


def _run_job(config: dict, run_dir: str, label: str, cwd: str, cpus: float) -> dict:
    """The body of one Ray task (runs in the worker)."""
    from fgvc.config import validate_config
    from fgvc.experiments.groups import run_member

    enter_worker(cwd, cpus)
    _check_writable(str(Path(run_dir).parent))
    cfg = validate_config(config, source=f"{run_dir}/config")
    return run_member(cfg, Path(run_dir), log=print, label=label)


def on_disk(jobs: Sequence[MemberJob]) -> str:
    """Which members finished, which can resume, which have nothing yet."""
    finished, resumable, nothing = [], [], []
    for job in jobs:
        folder = RunFolder(job.run_dir)
        (finished if folder.metrics_file.is_file() else resumable if folder.last_checkpoint.is_file()
         else nothing).append(job.name)
    parts = [f"{len(finished)} finished", f"{len(resumable)} with a checkpoint to resume"
             + (f" ({', '.join(resumable)})" if resumable else ""), f"{len(nothing)} not started or before epoch 1"]
    return "; ".join(parts)


class RayExecutor:
    name = "ray"

    def __init__(self, settings: ExecutorConfig):
        self.settings = settings

    def run(self, jobs: Sequence[MemberJob], progress: bool = False, log: Log = print) -> list[dict[str, Any]]:
        results: dict[int, dict] = {}
        todo = []
        for index, job in enumerate(jobs):
            folder = RunFolder(job.run_dir)
            check_member_config(job.config, job.run_dir)  # here, not in a worker: one clear line
            if folder.metrics_file.is_file():  # nothing to send to a worker
                log(f"{job.name}: finished earlier, reused")
                results[index] = folder.metrics()
            else:
                todo.append(index)
        if todo:
            with ray_session(self.settings) as ray:
                self._check_resources(ray)
                self._check_shared_storage(ray, Path(jobs[todo[0]].run_dir).resolve().parent)
                results.update(self._submit(ray, jobs, todo, log))
        return [results[i] for i in range(len(jobs))]

    # -- checks before the first member starts -----------------------------------------------------
    def _check_resources(self, ray) -> None:
        total = ray.cluster_resources()
        s = self.settings
        for key, wanted, option in (("CPU", s.cpus_per_trial, "--cpus-per-trial"),
                                    ("GPU", s.gpus_per_trial, "--gpus-per-trial")):
            have = float(total.get(key, 0))
            if wanted > have:
                raise FgvcError(f"{option} {wanted:g}: the Ray cluster has {have:g} {key}s in all, so no run could "
                                f"ever start; lower {option}")

    def _check_shared_storage(self, ray, directory: Path) -> None:
        """A worker writes a probe file where the runs go; the driver must see it (shared storage)."""
        probe = ray.remote(_check_writable).options(num_cpus=0)
        try:
            path = ray.get(probe.remote(str(directory)))
        except Exception as exc:  # noqa: BLE001 - the task's own FgvcError says what is wrong
            raise FgvcError(_cause(exc)) from None
        if not Path(path).is_file():
            raise FgvcError(f"a Ray worker wrote {path}, but this machine does not see it: output.dir ({directory}) "
                            "is not shared storage. On a cluster, put output.dir on storage every node mounts at "
                            "the same path (e.g. NFS)")
        Path(path).unlink()

    # -- the members ---------------------------------------------------------------------------------
    def _submit(self, ray, jobs: Sequence[MemberJob], todo: list[int], log: Log) -> dict[int, dict]:
        s = self.settings
        task = ray.remote(_run_job).options(num_cpus=s.cpus_per_trial, num_gpus=s.gpus_per_trial,
                                            max_retries=s.max_retries, retry_exceptions=False)
        cwd = os.getcwd()
        refs = {}
        for index in todo:
            job = jobs[index]
            refs[task.remote(job.config.model_dump(mode="json"), str(Path(job.run_dir).resolve()), job.name, cwd,
                             s.cpus_per_trial)] = index
        log(f"{len(refs)} runs sent to Ray ({s.cpus_per_trial:g} CPU, {s.gpus_per_trial:g} GPU each)")
        results: dict[int, dict] = {}
        pending = list(refs)
        try:
            with interruptible():  # also where this process was started with Ctrl-C ignored (a background job)
                while pending:
                    # a short timeout, looped: Python's Ctrl-C handler runs between waits
                    done, pending = ray.wait(pending, num_returns=1, timeout=WAIT_SECONDS)
                    if not done:
                        continue
                    index = refs[done[0]]
                    try:
                        results[index] = ray.get(done[0])
                    except Exception as exc:  # noqa: BLE001 - one member failed: stop the others, say why
                        for ref in pending:
                            ray.cancel(ref)
                        raise FgvcError(f"{jobs[index].name}: {_cause(exc).rstrip('.')}. On disk: "
                                        f"{on_disk([jobs[i] for i in todo])}; "
                                        "the same command again reuses finished runs and resumes the others") from None
                    if not RunFolder(jobs[index].run_dir).metrics_file.is_file():
                        raise FgvcError(f"{jobs[index].name} finished on a Ray worker, but its run folder "
                                        f"{jobs[index].run_dir} is not visible here: output.dir must be shared storage")
        except KeyboardInterrupt:
            log("Ctrl-C: stopping the runs on Ray (each keeps its last checkpoint) ...")
            for ref in pending:
                ray.cancel(ref)  # the run sees KeyboardInterrupt, records 'stopped' and keeps its checkpoints
            with contextlib.suppress(Exception):
                ray.wait(pending, num_returns=len(pending), timeout=30)
            raise RunStopped(f"stopped by Ctrl-C. On disk: {on_disk([jobs[i] for i in todo])}; the same command "
                             "again reuses finished runs and resumes the others", 130) from None
        return results


def _cause(exc: BaseException) -> str:
    """The message of the error a Ray task raised (not Ray's wrapper and the worker's traceback)."""
    from ray.exceptions import RayTaskError, WorkerCrashedError

    if isinstance(exc, RayTaskError) and exc.cause is not None:
        exc = exc.cause
    if isinstance(exc, WorkerCrashedError):
        return "its Ray worker died on every attempt (executor.max_retries)"
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


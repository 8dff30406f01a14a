"""What an experiment hands an executor: member jobs, and the protocol every executor follows.

An experiment (repeat, crossval, sweep, study, search) says *what* to run as a list of
:class:`MemberJob`; an :class:`Executor` (:mod:`fgvc.experiments.executors`: local, or
:mod:`fgvc.experiments.ray_executor`) says *where*. Both sides import this module and nothing of
each other, so no import runs in a circle.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

from fgvc.config import ExperimentConfig

Log = Callable[[str], None]


@dataclass(frozen=True)
class MemberJob:
    """One run of a group: its config and the folder it trains into; ``label`` names it in messages."""

    config: ExperimentConfig
    run_dir: Path
    label: str = ""

    @property
    def name(self) -> str:
        return self.label or self.run_dir.name


class Executor(Protocol):
    name: str

    def run(self, jobs: Sequence[MemberJob], progress: bool = False, log: Log = print) -> list[dict[str, Any]]:
        """Train (or reuse, or resume) every job; the metrics of each, in the jobs' order."""

"""The folders of many runs (GroupFolder) and of generated images (SyntheticFolder) as types: every
group file name is said here once, as every run file name is in :mod:`fgvc.runfolder`.

GROUP/                 many runs (GroupFolder): a repeat or crossval group, a sweep, a study, a search
  group.json           kind, the base config, and each member's settings
  seed-N/, fold-K/, final/   members: ordinary run folders
  summary.json         per split and metric: mean, std, CI over the members
  report.html, <split>_members.png, curves.png
  sweep.json           a sweep: the grid and the comparisons of its cells (each cell a group)
  study.json, tables.md, arms/<arm>/   a study: its arms (each a group) and their comparisons
  search.json, best.yaml, trials/trial-<id>/, tune/, confirm/start|best/   a search
  ensemble.json, predictions_<split>.csv   `fgvc ensemble --out`

SYNTHETIC/             generated images (SyntheticFolder): <class>/*.png, manifest.csv, filter_report.json

This module imports nothing of fgvc but the run folder and the errors, so every layer may use it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional, Sequence

from fgvc.errors import FgvcError
from fgvc.runfolder import RunFolder


class GroupFolder:
    """A folder of many runs: a group (repeat, crossval, a sweep's cell, a study's arm) with its members'
    run folders, or a folder of groups (a sweep, a study, a search), or an ensemble's output."""

    GROUP = "group.json"
    SUMMARY = "summary.json"
    REPORT = RunFolder.REPORT
    MEMBERS_PLOT = "{split}_members.png"  # the members' metrics of a split with the CI
    CURVES = "curves.png"  # the members' learning curves, one line each
    SEED_MEMBER = "seed-{seed}"
    FOLD_MEMBER = "fold-{fold}"
    FINAL = "final"  # crossval --retrain: trained on all folds
    SWEEP = "sweep.json"
    STUDY = "study.json"
    TABLES = "tables.md"
    ARMS = "arms"
    SEARCH = "search.json"
    BEST_CONFIG = "best.yaml"
    TRIALS = "trials"
    TRIAL_MEMBER = "trial-{trial}"
    TUNE = "tune"  # Ray Tune's own state
    CONFIRM = "confirm"
    START = "start"  # the confirmation's groups: the starting config and the search's best
    BEST = "best"
    ENSEMBLE = "ensemble.json"

    def __init__(self, path: Path | str):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"GroupFolder({str(self.path)!r})"

    def __str__(self) -> str:
        return str(self.path)

    # -- a group of runs ----------------------------------------------------------------------
    @property
    def group_file(self) -> Path:
        return self.path / self.GROUP

    @property
    def summary_file(self) -> Path:
        return self.path / self.SUMMARY

    @property
    def report_file(self) -> Path:
        return self.path / self.REPORT

    def members_plot(self, split: str) -> Path:
        return self.path / self.MEMBERS_PLOT.format(split=split)

    @property
    def curves_plot(self) -> Path:
        return self.path / self.CURVES

    @classmethod
    def seed_member(cls, seed: int) -> str:
        """The name of a repeat's member for ``seed`` (its folder in the group)."""
        return cls.SEED_MEMBER.format(seed=seed)

    @classmethod
    def fold_member(cls, fold: int) -> str:
        return cls.FOLD_MEMBER.format(fold=fold)

    def member(self, name: str) -> RunFolder:
        return RunFolder(self.path / name)

    def read(self) -> dict:
        """group.json; one clear error when the folder is missing or is not a group."""
        if not self.path.is_dir():
            raise FgvcError(f"run group not found: {self.path}")
        if not self.group_file.is_file():
            raise FgvcError(f"{self.path} is not a run group (no {self.GROUP}); make one with fgvc repeat / crossval "
                            "/ sweep")
        try:
            return json.loads(self.group_file.read_text())
        except (OSError, ValueError) as exc:
            raise FgvcError(f"{self.group_file} cannot be read ({getattr(exc, 'strerror', None) or exc}); run the "
                            "command that made the group again to rewrite it") from None

    def task(self) -> dict:
        """What the group's runs learn: the data set, its label and the class list (from a finished member)."""
        group = self.read()
        data = group["config"]["data"]
        classes = next((self.member(name).class_names() for name in group["members"]
                        if self.member(name).metrics_file.is_file()), None)
        return {"data set": data["name"], "label": data.get("label"), "classes": classes}

    @staticmethod
    def pairing_key(info: dict[str, Any]) -> int:
        """What pairs a member (its group.json entry) across groups: its fold index or its seed."""
        return int(info.get("fold", info.get("seed", 0)))

    def metric_values(self, split: str, metric: str, keys: Optional[Sequence[int]] = None) -> dict[int, float]:
        """{seed or fold: value} of one metric over the finished members (only those of ``keys``, if given):
        what pairs members across groups. {} without a readable group.json."""
        try:
            members = json.loads(self.group_file.read_text())["members"]
        except (OSError, ValueError, KeyError):
            return {}
        found = {}
        for name, info in members.items():
            member, key = self.member(name), self.pairing_key(info)
            if member.metrics_file.is_file() and (keys is None or key in keys):
                value = member.metrics().get(split, {}).get(metric)
                if isinstance(value, (int, float)):
                    found[key] = float(value)
        return found

    # -- a sweep, a study ---------------------------------------------------------------------
    @property
    def sweep_file(self) -> Path:
        return self.path / self.SWEEP

    @property
    def study_file(self) -> Path:
        return self.path / self.STUDY

    @property
    def tables_file(self) -> Path:
        return self.path / self.TABLES

    @property
    def arms_dir(self) -> Path:
        return self.path / self.ARMS

    # -- a search -----------------------------------------------------------------------------
    @property
    def search_file(self) -> Path:
        return self.path / self.SEARCH

    @property
    def best_config(self) -> Path:
        return self.path / self.BEST_CONFIG

    @property
    def trials_dir(self) -> Path:
        return self.path / self.TRIALS

    @classmethod
    def trial_member(cls, trial: str) -> str:
        return cls.TRIAL_MEMBER.format(trial=trial)

    def trial_dir(self, trial: str) -> Path:
        return self.trials_dir / self.trial_member(trial)

    @property
    def tune_dir(self) -> Path:
        return self.path / self.TUNE

    @property
    def confirm_start(self) -> Path:
        return self.path / self.CONFIRM / self.START

    @property
    def confirm_best(self) -> Path:
        return self.path / self.CONFIRM / self.BEST

    # -- an ensemble --------------------------------------------------------------------------
    @property
    def ensemble_file(self) -> Path:
        return self.path / self.ENSEMBLE

    def predictions_file(self, split: str = "test") -> Path:
        """The ensemble's predictions, in a run's format and name."""
        return self.path / RunFolder.PREDICTIONS.format(split=split)


class SyntheticFolder:
    """Generated images as a labelled data set: ``<class>/<file>.png`` listed in manifest.csv."""

    MANIFEST = "manifest.csv"
    MANIFEST_COLUMNS = ("file", "label", "generator", "checkpoint", "seed", "guidance", "confidence")
    FILTER_REPORT = "filter_report.json"  # fgvc synthetic filter: the kept fraction per class

    def __init__(self, path: Path | str):
        self.path = Path(path)

    @property
    def manifest_file(self) -> Path:
        return self.path / self.MANIFEST

    @property
    def filter_report(self) -> Path:
        return self.path / self.FILTER_REPORT


def require_same_task(base: Path, others: Sequence[Path]) -> None:
    """Groups that learn other data sets, labels or classes than ``base`` are not compared with it
    (their "difference" would be a verdict about nothing)."""
    ours = GroupFolder(base).task()
    for other in others:
        theirs = GroupFolder(other).task()
        for key in ("data set", "label", "classes"):
            if ours[key] is not None and theirs[key] is not None and ours[key] != theirs[key]:
                raise FgvcError(f"cannot compare {Path(base).name} and {Path(other).name}: they learn different tasks "
                                f"({key} {_shown(ours[key])} vs {_shown(theirs[key])}); compare groups of the same "
                                "data set and classes")


def _shown(value) -> str:
    if isinstance(value, list):
        return f"{len(value)} classes [{', '.join(map(str, value[:4]))}{', ...' if len(value) > 4 else ''}]"
    return repr(value)

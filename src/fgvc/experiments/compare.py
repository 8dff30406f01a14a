"""Compare run groups metric by metric: difference of means with CI, paired or Welch tests, a verdict."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from fgvc.errors import FgvcError
from fgvc.evaluate.stats import Comparison, compare_values, verdict
from fgvc.experiments.groups import member_metrics, read_group, values
from fgvc.groupfolder import GroupFolder
from fgvc.runfolder import RunFolder

DEFAULT_METRICS = ("top1", "f1_macro", "auroc_macro", "ece")


def compare_groups(groups: Sequence[Path], split: str = "test", metrics: Optional[Sequence[str]] = None,
                   confidence: float = 0.95, keys: Optional[Sequence[int]] = None) -> list[tuple[str, str, Comparison, str]]:
    """Each group against the first: [(A, B, comparison, verdict)] for every metric both have.
    ``keys``: only these seeds (or folds) of each group (default: every finished member)."""
    if len(groups) < 2:
        raise FgvcError("compare needs at least two run groups")
    base = Path(groups[0])
    require_same_task(base, [Path(g) for g in groups[1:]])
    if metrics:
        require_known_metrics(groups, split, metrics)
    rows = []
    for other in groups[1:]:
        other = Path(other)
        for metric in metrics or DEFAULT_METRICS:
            a, b = values(base, split, metric, keys), values(other, split, metric, keys)
            if not a or not b:
                continue
            try:
                comparison = compare_values(metric, a, b, confidence)
            except ValueError as exc:
                raise FgvcError(f"cannot compare {base.name} and {other.name}: {exc}") from None
            rows.append((base.name, other.name, comparison, verdict(comparison, base.name, other.name)))
    if not rows:
        raise FgvcError(f"no metric of split {split!r} is in both groups; finished members have metrics.json")
    return rows


def task(group_dir: Path) -> dict:
    """What a group's runs learn: the data set, its label and the class list (from a finished member)."""
    data = read_group(group_dir)["config"]["data"]
    classes = next((RunFolder(GroupFolder(group_dir).member(name).path).class_names()
                    for name in member_metrics(group_dir)), None)
    return {"data set": data["name"], "label": data.get("label"), "classes": classes}


def require_same_task(base: Path, others: Sequence[Path]) -> None:
    """Groups that learn other data sets, labels or classes than ``base`` are not compared with it
    (their "difference" would be a verdict about nothing)."""
    ours = task(base)
    for other in others:
        theirs = task(other)
        for key in ("data set", "label", "classes"):
            if ours[key] is not None and theirs[key] is not None and ours[key] != theirs[key]:
                raise FgvcError(f"cannot compare {base.name} and {other.name}: they learn different tasks ({key} "
                                f"{_shown(ours[key])} vs {_shown(theirs[key])}); compare groups of the same data "
                                "set and classes")


def require_known_metrics(groups: Sequence[Path], split: str, metrics: Sequence[str]) -> None:
    """An asked-for metric that no member of the groups reports is named, with the ones they do."""
    known = sorted({m for group in groups for member in member_metrics(Path(group)).values()
                    for m in member.get(split, {})})
    for metric in metrics:
        if metric not in known:
            raise FgvcError(f"--metric {metric}: the groups report no such {split} metric; choose from: "
                            f"{', '.join(known) or '(none: no member has finished)'}")


def _shown(value) -> str:
    if isinstance(value, list):
        return f"{len(value)} classes [{', '.join(map(str, value[:4]))}{', ...' if len(value) > 4 else ''}]"
    return repr(value)

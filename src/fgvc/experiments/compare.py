"""Compare run groups metric by metric: difference of means with CI, paired or Welch tests, a verdict."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from fgvc.errors import FgvcError
from fgvc.evaluate.stats import Comparison, compare_values, verdict
from fgvc.experiments.groups import member_metrics, values
from fgvc.groupfolder import require_same_task

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


def require_known_metrics(groups: Sequence[Path], split: str, metrics: Sequence[str]) -> None:
    """An asked-for metric that no member of the groups reports is named, with the ones they do."""
    known = sorted({m for group in groups for member in member_metrics(Path(group)).values()
                    for m in member.get(split, {})})
    for metric in metrics:
        if metric not in known:
            raise FgvcError(f"--metric {metric}: the groups report no such {split} metric; choose from: "
                            f"{', '.join(known) or '(none: no member has finished)'}")



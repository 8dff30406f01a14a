"""Alternating rounds for the bench scripts: every arm once per round, each round starting one arm
later, so a slow drift of the machine over the run (seen: ~10 %) falls on every arm alike."""

from __future__ import annotations

import statistics
from typing import Callable


def alternate(arms: dict[str, Callable[[], float]], repeats: int) -> dict[str, list[float]]:
    """Each arm's measurements (whatever its callable returns: seconds, images/s), ``repeats`` rounds."""
    names = list(arms)
    values: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(repeats):
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            values[name].append(arms[name]())
    return values


def median_ratio(numerators: list[float], denominators: list[float]) -> float:
    """The median of per-round ratios (a round's two arms shared the machine's state)."""
    return statistics.median(a / b for a, b in zip(numerators, denominators))

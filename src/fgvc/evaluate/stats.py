"""Statistics over repeated runs: mean, sample std, confidence intervals, and tests between groups (scipy).

A metric from one seed is one draw; these functions say how far a mean can be trusted and whether
two settings differ by more than the seed noise.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Mapping, Optional, Sequence

import numpy as np
from scipy import stats

LOWER_IS_BETTER = ("loss", "ece", "seconds", "error")


def lower_is_better(metric: str) -> bool:
    return any(word in metric for word in LOWER_IS_BETTER)


@dataclass
class Description:
    n: int
    mean: float
    std: float  # sample standard deviation (ddof=1)
    var: float
    min: float
    max: float
    ci_low: Optional[float]
    ci_high: Optional[float]
    confidence: float
    method: str

    def to_dict(self) -> dict:
        return asdict(self)


def describe(values: Sequence[float], confidence: float = 0.95, bootstrap: int = 0, seed: int = 0) -> Description:
    """Mean, sample std/variance, min/max and a CI of the mean: Student t, or a percentile bootstrap
    with ``bootstrap`` resamples. With one value the spread and CI are undefined (None / nan)."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    if n == 0:
        raise ValueError("no values to describe")
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if n > 1 else math.nan
    low = high = None
    method = "t"
    if n > 1:
        if bootstrap:
            method = f"bootstrap({bootstrap})"
            if np.ptp(x) == 0:
                low = high = mean
            else:
                result = stats.bootstrap((x,), np.mean, confidence_level=confidence, n_resamples=bootstrap,
                                         method="percentile", random_state=seed)
                low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
        else:
            sem = std / math.sqrt(n)
            if sem == 0:
                low = high = mean
            else:
                low, high = (float(v) for v in stats.t.interval(confidence, n - 1, loc=mean, scale=sem))
    return Description(n, mean, std, std ** 2 if n > 1 else math.nan, float(x.min()), float(x.max()),
                       low, high, confidence, method)


@dataclass
class Comparison:
    """B minus A for one metric."""

    metric: str
    n_a: int
    n_b: int
    paired: bool
    mean_a: float
    mean_b: float
    diff: float
    ci_low: float
    ci_high: float
    test: str
    p_value: float
    wilcoxon_p: Optional[float] = None
    confidence: float = 0.95

    def to_dict(self) -> dict:
        return asdict(self)


def compare_values(metric: str, a: Mapping[int, float], b: Mapping[int, float], confidence: float = 0.95) -> Comparison:
    """Difference of means (B - A) with its CI and a test: paired t-test (and Wilcoxon signed-rank)
    on the seeds both groups share, when they share at least two; Welch's unequal-variance t-test
    otherwise."""
    common = sorted(set(a) & set(b))
    alpha_quantile = 1 - (1 - confidence) / 2
    if len(common) >= 2 and len(common) == len(a) == len(b):
        xa = np.array([a[s] for s in common], dtype=float)
        xb = np.array([b[s] for s in common], dtype=float)
        d = xb - xa
        n = len(d)
        mean = float(d.mean())
        sem = float(d.std(ddof=1) / math.sqrt(n))
        if sem == 0:
            low = high = mean
            p = 1.0 if mean == 0 else 0.0
        else:
            half = float(stats.t.ppf(alpha_quantile, n - 1)) * sem
            low, high = mean - half, mean + half
            p = float(stats.ttest_rel(xb, xa).pvalue)
        wilcoxon = None
        if np.any(d != 0):
            wilcoxon = float(stats.wilcoxon(xb, xa).pvalue)
        return Comparison(metric, n, n, True, float(xa.mean()), float(xb.mean()), mean, low, high,
                          "paired t-test", p, wilcoxon, confidence)
    xa = np.array(list(a.values()), dtype=float)
    xb = np.array(list(b.values()), dtype=float)
    if len(xa) < 2 or len(xb) < 2:
        raise ValueError(f"{metric}: need at least 2 runs per group to compare (got {len(xa)} and {len(xb)})")
    va, vb = xa.var(ddof=1) / len(xa), xb.var(ddof=1) / len(xb)
    mean = float(xb.mean() - xa.mean())
    se = math.sqrt(va + vb)
    if se == 0:
        low = high = mean
        p = 1.0 if mean == 0 else 0.0
    else:
        df = (va + vb) ** 2 / (va ** 2 / (len(xa) - 1) + vb ** 2 / (len(xb) - 1))
        half = float(stats.t.ppf(alpha_quantile, df)) * se
        low, high = mean - half, mean + half
        p = float(stats.ttest_ind(xb, xa, equal_var=False).pvalue)
    return Comparison(metric, len(xa), len(xb), False, float(xa.mean()), float(xb.mean()), mean, low, high,
                      "Welch t-test", p, None, confidence)


def _scale(metric: str, value: float) -> tuple[float, str]:
    """Proportions are spoken of in points (x100); other metrics as they are."""
    proportion = any(k in metric for k in ("top", "f1", "precision", "recall", "auroc", "ece", "acc"))
    return (value * 100, " points") if proportion else (value, "")


def verdict(comparison: Comparison, name_a: str = "A", name_b: str = "B", alpha: Optional[float] = None) -> str:
    """One sentence: which is better, by how much, with CI, p and the pairing."""
    c = comparison
    alpha = alpha if alpha is not None else 1 - c.confidence
    diff, unit = _scale(c.metric, c.diff)
    low, _ = _scale(c.metric, c.ci_low)
    high, _ = _scale(c.metric, c.ci_high)
    pairing = f"{c.n_a} paired seeds" if c.paired else f"{c.n_a} vs {c.n_b} runs, unpaired"

    def stats_text(low: float, high: float) -> str:
        return f"{c.confidence:.0%} CI [{low:.2f}, {high:.2f}], p={c.p_value:.3g}, {pairing}"

    if c.p_value >= alpha or (c.ci_low <= 0 <= c.ci_high and c.ci_low != c.ci_high):
        return f"no significant difference between {name_a} and {name_b} on {c.metric} " \
               f"(B - A = {diff:+.2f}{unit}, {stats_text(low, high)})"
    b_better = (c.diff > 0) != lower_is_better(c.metric)
    winner, loser = (name_b, name_a) if b_better else (name_a, name_b)
    gap_ci = (low, high) if c.diff >= 0 else (-high, -low)  # the gap is said as a positive number, so its CI too
    return f"{winner} better than {loser} on {c.metric} by {abs(diff):.2f}{unit}, {stats_text(*gap_ci)}"

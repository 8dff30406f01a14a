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


PROPORTION_WORDS = ("top", "f1", "precision", "recall", "auroc", "ece", "acc")
NONNEGATIVE_WORDS = ("loss", "seconds")
LOGIT_CLIP = 1e-4
FEW_RUNS = 3


def metric_range(metric: str) -> str:
    """``proportion`` (in [0, 1]), ``nonnegative`` (losses, times) or ``real``: what scale its CI is built on."""
    if any(word in metric for word in PROPORTION_WORDS):
        return "proportion"
    if any(word in metric for word in NONNEGATIVE_WORDS):
        return "nonnegative"
    return "real"


def few_runs_warning(n: int, unit: str = "seeds") -> Optional[str]:
    """A warning for summaries over fewer than 3 runs (None otherwise); ``unit``: what the runs vary
    (seeds, or folds for a cross-validation)."""
    if n >= FEW_RUNS:
        return None
    return (f"only {n} run{'s' if n != 1 else ''}: a confidence interval over so few {unit} is very wide or "
            f"undefined; use 3 or more {unit} for a number to report")


def _t_interval(x: np.ndarray, confidence: float) -> tuple[float, float]:
    mean, sem = float(x.mean()), float(x.std(ddof=1) / math.sqrt(len(x)))
    if sem == 0:
        return mean, mean
    low, high = stats.t.interval(confidence, len(x) - 1, loc=mean, scale=sem)
    return float(low), float(high)


def _scaled_t_interval(x: np.ndarray, confidence: float, kind: str) -> tuple[float, float, str]:
    """A t interval that stays inside the metric's range: built on the logit scale for proportions
    (values first held inside [1e-4, 1 - 1e-4]) and on the log scale for non-negative metrics, then
    mapped back. On those scales a mean near a bound gets the asymmetric interval it should."""
    if kind == "proportion" and x.min() >= 0 and x.max() <= 1:
        z = np.clip(x, LOGIT_CLIP, 1 - LOGIT_CLIP)
        if np.ptp(z) == 0:
            return float(x.mean()), float(x.mean()), "t"
        low, high = _t_interval(np.log(z / (1 - z)), confidence)
        return float(1 / (1 + math.exp(-low))), float(1 / (1 + math.exp(-high))), "t on logit scale"
    if kind == "nonnegative" and x.min() > 0:
        low, high = _t_interval(np.log(x), confidence)
        return float(math.exp(low)), float(math.exp(high)), "t on log scale"
    low, high = _t_interval(x, confidence)
    return low, high, "t"


def describe(values: Sequence[float], confidence: float = 0.95, bootstrap: int = 0, seed: int = 0,
             metric: str = "") -> Description:
    """Mean, sample std/variance, min/max and a CI of the mean: Student t, or a percentile bootstrap
    with ``bootstrap`` resamples. Named bounded metrics (``metric``: top1, f1, auroc, ...; losses and
    times) get a t interval on the logit / log scale, so the CI never leaves the metric's range. With
    one value the spread and CI are undefined (None / nan)."""
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
            low, high, method = _scaled_t_interval(x, confidence, metric_range(metric))
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
    unshared: int = 0  # runs of either group whose seed the other lacks (left out of a paired comparison)

    def to_dict(self) -> dict:
        return asdict(self)


def compare_values(metric: str, a: Mapping[int, float], b: Mapping[int, float], confidence: float = 0.95) -> Comparison:
    """Difference of means (B - A) with its CI and a test: paired t-test (and Wilcoxon signed-rank)
    on the seeds both groups share, when they share at least two (the others left out, and counted);
    Welch's unequal-variance t-test otherwise."""
    common = sorted(set(a) & set(b))
    alpha_quantile = 1 - (1 - confidence) / 2
    if len(common) >= 2:
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
                          "paired t-test", p, wilcoxon, confidence, unshared=len(a) + len(b) - 2 * n)
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


def in_points(metric: str, value: float) -> tuple[float, str]:
    """Proportions are spoken of in points (x100); other metrics as they are. (value, unit)."""
    proportion = metric_range(metric) == "proportion"
    return (value * 100, " points") if proportion else (value, "")


def significant(comparison: Comparison, alpha: Optional[float] = None) -> bool:
    """p below alpha (1 - confidence by default) and a CI that excludes zero."""
    c = comparison
    alpha = alpha if alpha is not None else 1 - c.confidence
    return not (c.p_value >= alpha or (c.ci_low <= 0 <= c.ci_high and c.ci_low != c.ci_high))


def b_is_better(comparison: Comparison) -> bool:
    return (comparison.diff > 0) != lower_is_better(comparison.metric)


def verdict(comparison: Comparison, name_a: str = "A", name_b: str = "B", alpha: Optional[float] = None) -> str:
    """One sentence: which is better, by how much, with CI, p and the pairing."""
    c = comparison
    alpha = alpha if alpha is not None else 1 - c.confidence
    diff, unit = in_points(c.metric, c.diff)
    low, _ = in_points(c.metric, c.ci_low)
    high, _ = in_points(c.metric, c.ci_high)
    unshared = f", {c.unshared} run{'s' if c.unshared > 1 else ''} without a partner left out" if c.unshared else ""
    pairing = f"{c.n_a} paired seeds{unshared}" if c.paired else f"{c.n_a} vs {c.n_b} runs, unpaired"

    def stats_text(low: float, high: float) -> str:
        return f"{c.confidence:.0%} CI [{low:.2f}, {high:.2f}], p={c.p_value:.3g}, {pairing}"

    if not significant(c, alpha):
        return f"no significant difference between {name_a} and {name_b} on {c.metric} " \
               f"(B - A = {diff:+.2f}{unit}, {stats_text(low, high)})"
    winner, loser = (name_b, name_a) if b_is_better(c) else (name_a, name_b)
    gap_ci = (low, high) if c.diff >= 0 else (-high, -low)  # the gap is said as a positive number, so its CI too
    return f"{winner} better than {loser} on {c.metric} by {abs(diff):.2f}{unit}, {stats_text(*gap_ci)}"

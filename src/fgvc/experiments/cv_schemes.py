"""How good is a cross-validation estimate? k-fold (repeated with other shuffles) against
leave-one-out, on a model cheap enough to fit thousands of times: logistic regression on cached
features. Each scheme reports its estimate of accuracy, how much that estimate moves when the folds
are drawn again, and what it cost; the accuracy on an untouched test split is the yardstick.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass
from typing import Callable, Optional, Sequence

import numpy as np

from fgvc.models.logreg import LogisticFit, fit_logreg


@dataclass
class SchemeResult:
    scheme: str
    fits: int
    seconds: float
    estimate: float             # mean over repeats of the pooled out-of-fold accuracy
    spread: Optional[float]     # sample std of that estimate over repeats (None: a single repeat)
    fold_std: Optional[float]   # mean over repeats of the std of the per-fold accuracies
    repeats: int

    def to_dict(self) -> dict:
        return asdict(self)


def _fit(x: np.ndarray, y: np.ndarray, c: float, class_weight, seed: int,
         warm_start: Optional[LogisticFit] = None) -> LogisticFit:
    """The logistic regression every scheme fits (:func:`fgvc.models.logreg.fit_logreg`), quietly."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a rare non-converged LOO fit is still a fit
        return fit_logreg(x, y, c, class_weight, seed, warm_start=warm_start)


def kfold(x: np.ndarray, y: np.ndarray, folds: int, c: float, repeats: int = 1, seed: int = 0,
          class_weight=None) -> SchemeResult:
    """Stratified ``folds``-fold CV, ``repeats`` times with different shuffles."""
    from sklearn.model_selection import StratifiedKFold

    started = time.perf_counter()
    estimates, fold_stds = [], []
    for repeat in range(repeats):
        correct = np.zeros(len(y), dtype=bool)
        per_fold = []
        for train, held in StratifiedKFold(folds, shuffle=True, random_state=seed + repeat).split(x, y):
            model = _fit(x[train], y[train], c, class_weight, seed)
            correct[held] = model.predict(x[held]) == y[held]
            per_fold.append(correct[held].mean())
        estimates.append(correct.mean())
        fold_stds.append(float(np.std(per_fold, ddof=1)))
    return SchemeResult(f"{folds}-fold", folds * repeats, time.perf_counter() - started, float(np.mean(estimates)),
                        float(np.std(estimates, ddof=1)) if repeats > 1 else None, float(np.mean(fold_stds)), repeats)


def leave_one_out(x: np.ndarray, y: np.ndarray, c: float, seed: int = 0, class_weight=None,
                  limit: Optional[int] = None) -> SchemeResult:
    """n fits, each warm-started from the fit on all n images (the same optimum, reached sooner).
    ``limit``: hold out only that many images (an evenly spaced subset), to bound the cost."""
    started = time.perf_counter()
    full = _fit(x, y, c, class_weight, seed)
    held_out = np.arange(len(y)) if limit is None else np.linspace(0, len(y) - 1, limit).round().astype(int)
    correct = []
    for i in held_out:
        keep = np.ones(len(y), dtype=bool)
        keep[i] = False
        model = _fit(x[keep], y[keep], c, class_weight, seed, warm_start=full)
        correct.append(model.predict(x[i:i + 1])[0] == y[i])
    correct = np.array(correct, dtype=float)
    name = "leave-one-out" if limit is None else f"leave-one-out ({len(held_out)} of {len(y)})"
    return SchemeResult(name, len(held_out) + 1, time.perf_counter() - started, float(correct.mean()), None,
                        float(correct.std(ddof=1)), 1)


def compare_schemes(x: np.ndarray, y: np.ndarray, c: float, folds: Sequence[int] = (5, 10), repeats: int = 5,
                    loo: bool = True, loo_limit: Optional[int] = None, seed: int = 0, class_weight=None,
                    log: Callable[[str], None] = print) -> list[SchemeResult]:
    """Every k of ``folds`` (repeated), then leave-one-out."""
    results = []
    for k in folds:
        results.append(kfold(x, y, k, c, repeats, seed, class_weight))
        log(f"{results[-1].scheme}: {results[-1].estimate:.4f} in {results[-1].seconds:.0f}s")
    if loo:
        results.append(leave_one_out(x, y, c, seed, class_weight, loo_limit))
        log(f"{results[-1].scheme}: {results[-1].estimate:.4f} in {results[-1].seconds:.0f}s")
    return results

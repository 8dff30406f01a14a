import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import LeaveOneOut, cross_val_score

from fgvc.experiments.cv_schemes import compare_schemes, kfold, leave_one_out


def blobs(n=60, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = rng.normal(size=(n, 5)) + y[:, None] * 0.8  # overlapping classes: some images are misclassified
    return x, y


def test_warm_started_leave_one_out_equals_the_plain_one():
    x, y = blobs()
    ours = leave_one_out(x, y, c=0.5)
    plain = cross_val_score(LogisticRegression(C=0.5, max_iter=2000), x, y, cv=LeaveOneOut()).mean()
    assert ours.estimate == plain and 0.4 < plain < 1.0
    assert ours.fits == len(y) + 1 and ours.spread is None and ours.scheme == "leave-one-out"
    part = leave_one_out(x, y, c=0.5, limit=12)
    assert part.fits == 13 and part.scheme == "leave-one-out (12 of 60)"


def test_repeated_kfold_reports_the_estimate_and_its_spread():
    x, y = blobs(90)
    once = kfold(x, y, 5, c=0.5, repeats=1)
    many = kfold(x, y, 5, c=0.5, repeats=4)
    assert once.spread is None and once.fits == 5 and many.fits == 20
    assert many.spread > 0 and many.fold_std > 0  # other shuffles, other estimates
    assert kfold(x, y, 5, c=0.5, repeats=1).estimate == once.estimate  # seeded
    rows = compare_schemes(x, y, c=0.5, folds=(3, 5), repeats=2, loo=False, log=lambda _: None)
    assert [r.scheme for r in rows] == ["3-fold", "5-fold"]

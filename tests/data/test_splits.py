import numpy as np
import pytest

from fgvc.data.splits import limit_per_class, stratified_kfold, stratified_split
from fgvc.errors import DataError

LABELS = np.repeat([0, 1, 2, 3], [50, 30, 10, 10])


def test_stratified_split_proportions_and_disjoint():
    kept, held = stratified_split(LABELS, 0.2, seed=3)
    assert len(held) == 20 and len(kept) == 80
    assert np.bincount(LABELS[held]).tolist() == [10, 6, 2, 2]
    assert not set(kept) & set(held)
    assert sorted(np.concatenate([kept, held])) == list(range(100))


def test_same_seed_same_split_other_seed_other_split():
    a = stratified_split(LABELS, 0.2, seed=7)[1]
    b = stratified_split(LABELS, 0.2, seed=7)[1]
    c = stratified_split(LABELS, 0.2, seed=8)[1]
    assert a.tolist() == b.tolist()
    assert a.tolist() != c.tolist()


def test_zero_fraction_keeps_everything():
    kept, held = stratified_split(LABELS, 0.0, seed=0)
    assert len(kept) == 100 and len(held) == 0


def test_singleton_class_error_is_actionable():
    with pytest.raises(DataError, match=r"class 'red' has 1 image, fewer than 2; lower data.val_fraction"):
        stratified_split(np.array([0, 0, 1, 1, 2]), 0.5, seed=0, class_names=["blue", "green", "red"])


def test_kfold_disjoint_covering_and_stratified():
    folds = stratified_kfold(LABELS, 5, seed=0)
    assert len(folds) == 5
    vals = [v for _, v in folds]
    assert sorted(np.concatenate(vals).tolist()) == list(range(100))
    for train, val in folds:
        assert not set(train) & set(val)
        assert np.bincount(LABELS[val], minlength=4).tolist() == [10, 6, 2, 2]
    again = stratified_kfold(LABELS, 5, seed=0)
    assert all((a[1] == b[1]).all() for a, b in zip(folds, again))


def test_kfold_too_few_images_per_class():
    with pytest.raises(DataError, match="5-fold split: class #1 has 3 images, fewer than 5; use fewer folds"):
        stratified_kfold(np.array([0] * 10 + [1] * 3), 5, seed=0)


def test_limit_per_class_deterministic():
    a = limit_per_class(LABELS, 5, seed=1)
    assert np.bincount(LABELS[a]).tolist() == [5, 5, 5, 5]
    assert a.tolist() == limit_per_class(LABELS, 5, seed=1).tolist()

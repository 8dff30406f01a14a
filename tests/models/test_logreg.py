"""The one logistic-regression fit: its nn.Linear gives scikit-learn's probabilities on raw features."""

import numpy as np
import pytest
import torch

from fgvc.models.logreg import fit_logreg


def features(n, dim, labels, seed=0):
    """Overlapping Gaussian blobs, one per label, on a scale and offset standardising must undo."""
    rng = np.random.default_rng(seed)
    y = np.asarray(labels)[np.arange(n) % len(labels)]
    x = rng.normal(size=(n, dim)) * rng.uniform(0.1, 20, size=dim) + rng.uniform(-50, 50, size=dim)
    x[:, 0] += 3.0 * y  # some signal, not a perfect separation
    return x.astype(np.float32), y


def linear_probs(fit, x, num_classes):
    head = fit.to_linear(num_classes)
    with torch.no_grad():
        return head(torch.from_numpy(x)).softmax(-1).double().numpy()


@pytest.mark.parametrize("standardize", [False, True])
@pytest.mark.parametrize("labels, num_classes", [((0, 1, 2, 3), 4),   # multi-class
                                                 ((0, 1), 2),         # binary: one logit in scikit-learn
                                                 ((0, 2, 3), 5),      # classes 1 and 4 absent from training
                                                 ((1, 3), 4)])        # binary with absent classes
def test_linear_head_gives_the_probabilities_of_predict_proba(labels, num_classes, standardize):
    x, y = features(120, 6, labels)
    fit = fit_logreg(x, y, c=0.5, seed=0, standardize=standardize)
    ours = linear_probs(fit, x, num_classes)
    theirs = fit.predict_proba(x)
    assert list(fit.classes) == list(labels)
    np.testing.assert_allclose(ours[:, fit.classes], theirs, atol=2e-4)
    absent = np.setdiff1d(np.arange(num_classes), fit.classes)
    assert ours[:, absent].max(initial=0) < 1e-30  # a class never seen never wins
    assert (ours.argmax(1) == fit.predict(x)).mean() > 0.99  # float32 head: ties may differ at most


def test_standardising_and_class_weights_change_the_fit_as_asked():
    x, y = features(90, 4, (0, 1, 2))
    plain = fit_logreg(x, y, c=0.01)
    standardized = fit_logreg(x, y, c=0.01, standardize=True)
    np.testing.assert_allclose(standardized.mean, x.astype(np.float64).mean(0))
    assert not np.allclose(plain.predict_proba(x), standardized.predict_proba(x))
    weighted = fit_logreg(torch.from_numpy(x), torch.from_numpy(y), c=0.01, class_weight=np.array([5.0, 1.0, 0.0]))
    assert weighted.model.class_weight == {0: 5.0, 1: 1.0}  # weight 0: left to scikit-learn's default
    assert weighted.predict_proba(x)[:, 0].mean() > plain.predict_proba(x)[:, 0].mean()


def test_a_warm_start_reaches_the_same_optimum():
    x, y = features(60, 5, (0, 1, 2))
    full = fit_logreg(x, y, c=0.5)
    cold = fit_logreg(x[1:], y[1:], c=0.5)
    warm = fit_logreg(x[1:], y[1:], c=0.5, warm_start=full)
    assert warm.model.warm_start and not cold.model.warm_start
    np.testing.assert_allclose(warm.predict_proba(x), cold.predict_proba(x), atol=1e-3)

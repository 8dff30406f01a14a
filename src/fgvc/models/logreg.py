"""scikit-learn's multinomial logistic regression, fitted the same way for every caller (the feature
probe's head, the cross-validation schemes), and turned into an equivalent ``nn.Linear``.

The fit optionally standardises the features (mean 0, std 1 per feature, on the data it is fitted
on); the linear layer folds that standardisation into its weights, so it takes raw features and
gives the same probabilities as ``predict_proba``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Union

import numpy as np
import torch
from torch import nn

ABSENT_CLASS_BIAS = -1e4  # a class the fit never saw gets this logit bias: it never wins

ClassWeight = Union[None, str, dict, np.ndarray, torch.Tensor, list]


@dataclass
class LogisticFit:
    """A fitted logistic regression: ``model`` (scikit-learn's) on ``(x - mean) / scale``."""

    model: Any
    mean: np.ndarray
    scale: np.ndarray

    @property
    def classes(self) -> np.ndarray:
        """The labels seen in the fit, in the order of the model's outputs."""
        return self.model.classes_

    def standardized(self, x) -> np.ndarray:
        return (_float64(x) - self.mean) / self.scale

    def predict(self, x) -> np.ndarray:
        return self.model.predict(self.standardized(x))

    def predict_proba(self, x) -> np.ndarray:
        """(N, len(classes)) probabilities, columns in the order of ``classes``."""
        return self.model.predict_proba(self.standardized(x))

    def to_linear(self, num_classes: int) -> nn.Linear:
        """An ``nn.Linear(features, num_classes)`` whose softmax equals ``predict_proba`` on raw features:
        the standardisation folded in, a binary fit's one logit split into two symmetric ones, and
        classes absent from the fit given weight 0 and bias -1e4 (labels must be 0..num_classes-1)."""
        coef = self.model.coef_ / self.scale
        intercept = self.model.intercept_ - coef @ self.mean
        classes = self.classes
        if len(classes) == 2 and coef.shape[0] == 1:  # binary: sigmoid(z) = softmax(-z/2, z/2)[1]
            coef = np.vstack([-coef / 2, coef / 2])
            intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
        weight = np.zeros((num_classes, coef.shape[1]), dtype=np.float32)
        bias = np.zeros(num_classes, dtype=np.float32)
        weight[classes] = coef
        bias[classes] = intercept
        if len(classes) < num_classes:
            bias[np.setdiff1d(np.arange(num_classes), classes)] = ABSENT_CLASS_BIAS
        head = nn.Linear(coef.shape[1], num_classes)
        with torch.no_grad():
            head.weight.copy_(torch.from_numpy(weight))
            head.bias.copy_(torch.from_numpy(bias))
        return head


def fit_logreg(x, y, c: float, class_weight: ClassWeight = None, seed: int = 0, standardize: bool = False,
               warm_start: Optional[LogisticFit] = None) -> LogisticFit:
    """Fit multinomial logistic regression (lbfgs, at most 2000 iterations) on features ``x`` (N, D)
    and integer labels ``y`` (N,): numpy arrays or CPU tensors.

    Args:
        c: inverse regularisation strength (scikit-learn's ``C``).
        class_weight: None, ``"balanced"``, a {label: weight} dict, or one weight per class (label
            order); classes of weight 0 are left to scikit-learn's default of 1.
        seed: ``random_state``.
        standardize: fit on (x - mean) / (std + 1e-6) of ``x``; :meth:`LogisticFit.to_linear` folds it in.
        warm_start: start from this fit's coefficients (e.g. a fit on all the data before leaving
            one image out: the same optimum, reached sooner).
    """
    from sklearn.linear_model import LogisticRegression

    data, labels = _float64(x), np.asarray(y)
    mean, scale = np.zeros(data.shape[1]), np.ones(data.shape[1])
    if standardize:
        mean, scale = data.mean(0), data.std(0) + 1e-6
    model = LogisticRegression(C=c, max_iter=2000, class_weight=_class_weight(class_weight), random_state=seed,
                               warm_start=warm_start is not None)
    if warm_start is not None:
        model.coef_, model.intercept_ = warm_start.model.coef_.copy(), warm_start.model.intercept_.copy()
        model.classes_ = warm_start.model.classes_
    model.fit((data - mean) / scale, labels)
    return LogisticFit(model, mean, scale)


def _float64(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _class_weight(class_weight: ClassWeight):
    if class_weight is None or isinstance(class_weight, (str, dict)):
        return class_weight
    weights = class_weight.tolist() if isinstance(class_weight, (np.ndarray, torch.Tensor)) else list(class_weight)
    return {k: float(w) for k, w in enumerate(weights) if w > 0}

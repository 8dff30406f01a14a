"""Deitsch et al.'s head for ordered classes ("Automatic classification of defective photovoltaic module
cells in electroluminescence images", Solar Energy 2019): one regression output on the class position
scaled to [0, 1] (ELPV's defect probabilities 0, 1/3, 2/3, 1), rounded to the nearest class. Here a
ridge regression on frozen features, turned into an ``nn.Linear`` over the classes.

Rounding to the nearest class g_k = k / (C - 1) is the argmax of -(y_hat - g_k)^2 over k; its softmax at
temperature t gives the class probabilities, and since y_hat^2 is the same for every k, those logits,
(2 g_k y_hat - g_k^2) / t, are linear in y_hat, hence in the features: the head is one Linear layer
that eval, predict, ensembles and export read like any other probe head.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from torch import nn

from fgvc.errors import ConfigError


@dataclass
class RidgeFit:
    """y_hat = x @ coef + intercept, on raw features (any standardisation folded in)."""

    coef: np.ndarray
    intercept: float

    def predict(self, x) -> np.ndarray:
        return _float64(x) @ self.coef + self.intercept

    def to_linear(self, classes: int, temperature: float) -> nn.Linear:
        """The Linear layer whose argmax rounds y_hat to the nearest class and whose softmax is the
        rounding's probabilities at ``temperature``."""
        grades = np.arange(classes) / (classes - 1)
        weight = np.outer(2 * grades, self.coef) / temperature
        bias = (2 * grades * self.intercept - grades ** 2) / temperature
        head = nn.Linear(len(self.coef), classes)
        with torch.no_grad():
            head.weight.copy_(torch.from_numpy(weight.astype(np.float32)))
            head.bias.copy_(torch.from_numpy(bias.astype(np.float32)))
        return head


def fit_ordinal_ridge(x, y, classes: int, alpha: float, sample_weight: Optional[np.ndarray] = None) -> RidgeFit:
    """Ridge regression of the class position y / (classes - 1) on features standardised on ``x``
    (the standardisation folded into the coefficients)."""
    from sklearn.linear_model import Ridge

    if classes < 2:
        raise ConfigError(f"probe.head: regression rounds to ordered classes and this data has {classes}; it needs "
                          "at least two")
    data = _float64(x)
    mean, scale = data.mean(0), data.std(0) + 1e-6
    target = np.asarray(y, dtype=np.float64) / (classes - 1)
    model = Ridge(alpha=alpha).fit((data - mean) / scale, target, sample_weight=sample_weight)
    coef = model.coef_ / scale
    return RidgeFit(coef, float(model.intercept_ - coef @ mean))


def _float64(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)

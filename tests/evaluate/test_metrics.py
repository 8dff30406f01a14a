"""Metrics against scikit-learn on known predictions."""

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from fgvc.evaluate.metrics import compute_metrics


@pytest.fixture(scope="module")
def predictions():
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 6, 200)
    logits = rng.normal(size=(200, 6))
    logits[np.arange(200), targets] += rng.normal(1.0, 1.0, 200)  # better than chance, far from perfect
    probs = torch.tensor(logits).softmax(-1).numpy()
    return probs, targets


def test_against_sklearn(predictions):
    probs, targets = predictions
    names = [f"c{i}" for i in range(6)]
    result = compute_metrics(torch.tensor(probs), torch.tensor(targets), names)
    predicted = probs.argmax(1)
    assert result["top1"] == pytest.approx(skm.accuracy_score(targets, predicted), abs=1e-6)
    assert result["top5"] == pytest.approx(skm.top_k_accuracy_score(targets, probs, k=5), abs=1e-6)
    assert result["precision_macro"] == pytest.approx(skm.precision_score(targets, predicted, average="macro"), abs=1e-5)
    assert result["recall_macro"] == pytest.approx(skm.recall_score(targets, predicted, average="macro"), abs=1e-5)
    assert result["f1_macro"] == pytest.approx(skm.f1_score(targets, predicted, average="macro"), abs=1e-5)
    assert result["auroc_macro"] == pytest.approx(skm.roc_auc_score(targets, probs, multi_class="ovr", average="macro"), abs=1e-4)
    assert np.array_equal(np.array(result["confusion_matrix"]), skm.confusion_matrix(targets, predicted))
    per_class = skm.confusion_matrix(targets, predicted, normalize="true").diagonal()
    assert np.allclose(list(result["per_class_accuracy"].values()), per_class, atol=1e-6)
    precision, recall, f1, support = skm.precision_recall_fscore_support(targets, predicted)
    rows = result["per_class"]
    assert list(rows) == names
    assert np.allclose([rows[n]["precision"] for n in names], precision, atol=1e-5)
    assert np.allclose([rows[n]["recall"] for n in names], recall, atol=1e-5)
    assert np.allclose([rows[n]["f1"] for n in names], f1, atol=1e-5)
    assert [rows[n]["support"] for n in names] == list(support)


def test_expected_calibration_error_by_hand(predictions):
    probs, targets = predictions
    confidence, predicted = probs.max(1), probs.argmax(1)
    bins = np.linspace(0, 1, 16)
    ece = 0.0
    for low, high in zip(bins[:-1], bins[1:]):
        inside = (confidence > low) & (confidence <= high)
        if inside.any():
            ece += inside.mean() * abs((predicted[inside] == targets[inside]).mean() - confidence[inside].mean())
    result = compute_metrics(torch.tensor(probs), torch.tensor(targets), [str(i) for i in range(6)])
    assert result["ece"] == pytest.approx(ece, abs=1e-5)


def test_absent_class_left_out_of_macro_averages():
    probs = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.8, 0.0]])
    result = compute_metrics(probs, torch.tensor([0, 1]), ["a", "b", "c"])
    assert result["recall_macro"] == 1.0 and "c" not in result["per_class_accuracy"]
    assert "top3" not in result and "top5" not in result  # k >= classes: 1.0 by construction, so left out
    two = compute_metrics(torch.tensor([[0.5, 0.3, 0.2], [0.5, 0.3, 0.2]]), torch.tensor([1, 2]), ["a", "b", "c"], top_k=2)
    assert two["top2"] == 0.5 and two["top1"] == 0.0

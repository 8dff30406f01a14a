import numpy as np
import torch
import torch.nn.functional as F
from sklearn.utils.class_weight import compute_class_weight

from fgvc.config import LossConfig
from fgvc.train.losses import CrossEntropy, FocalLoss, balanced_class_weights, build_loss

torch.manual_seed(0)
LOGITS = torch.randn(16, 5)
TARGETS = torch.randint(0, 5, (16,))


def test_cross_entropy_and_label_smoothing_match_torch():
    assert torch.allclose(CrossEntropy()(LOGITS, TARGETS), F.cross_entropy(LOGITS, TARGETS))
    smooth = build_loss(LossConfig(name="label_smoothing", smoothing=0.2), np.ones(5))
    assert torch.allclose(smooth(LOGITS, TARGETS), F.cross_entropy(LOGITS, TARGETS, label_smoothing=0.2))


def test_soft_targets_equal_hard_ones_when_one_hot():
    soft = F.one_hot(TARGETS, 5).float()
    assert torch.allclose(CrossEntropy()(LOGITS, soft), F.cross_entropy(LOGITS, TARGETS), atol=1e-6)
    assert torch.allclose(FocalLoss(2.0)(LOGITS, soft), FocalLoss(2.0)(LOGITS, TARGETS), atol=1e-6)


def test_focal_with_gamma_zero_is_cross_entropy_and_down_weights_easy_examples():
    assert torch.allclose(FocalLoss(gamma=0.0)(LOGITS, TARGETS), F.cross_entropy(LOGITS, TARGETS), atol=1e-6)
    easy = torch.tensor([[10.0, 0.0]])
    hard = torch.tensor([[0.0, 0.0]])
    target = torch.tensor([0])
    ratio_easy = FocalLoss(2.0)(easy, target) / F.cross_entropy(easy, target)
    ratio_hard = FocalLoss(2.0)(hard, target) / F.cross_entropy(hard, target)
    assert ratio_easy < 1e-6 and abs(ratio_hard.item() - 0.25) < 1e-6  # (1 - 0.5)^2


def test_balanced_weights_match_sklearn():
    labels = np.array([0] * 50 + [1] * 30 + [2] * 5)
    expected = compute_class_weight("balanced", classes=np.arange(3), y=labels)
    assert np.allclose(balanced_class_weights(np.bincount(labels)).numpy(), expected)
    weighted = build_loss(LossConfig(class_weights="balanced"), np.bincount(labels))
    w = torch.tensor(expected, dtype=torch.float32)
    logits, targets = LOGITS[:, :3], TARGETS % 3
    assert torch.allclose(weighted(logits, targets), F.cross_entropy(logits, targets, weight=w))


def test_sqrt_class_weights_are_the_root_of_balanced():
    from fgvc.config import LossConfig
    from fgvc.train.losses import class_weights

    counts = np.array([80, 15, 5])
    balanced = balanced_class_weights(counts)
    assert torch.allclose(class_weights(counts, "sqrt"), balanced.sqrt())
    assert class_weights(counts, "none") is None
    loss = build_loss(LossConfig(name="ce", class_weights="sqrt"), counts)
    logits, target = torch.tensor([[2.0, 0, 0], [2.0, 0, 0]]), torch.tensor([0, 2])  # the rare class is wrong
    assert float(loss(logits, target)) > float(build_loss(LossConfig(name="ce"), counts)(logits, target))

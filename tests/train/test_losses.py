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


def test_ordinal_loss_charges_a_near_miss_less_than_a_far_one():
    loss = build_loss(LossConfig(name="ordinal", ordinal_scale=2.0), np.ones(4))
    rows = loss.rows
    assert torch.allclose(rows.sum(1), torch.ones(4)) and int(rows[1].argmax()) == 1
    assert rows[1, 0] == rows[1, 2] > rows[1, 3] > 0  # symmetric, and falling with the distance
    target = torch.tensor([3])
    near, far = torch.tensor([[0.0, 0.0, 5.0, 0.0]]), torch.tensor([[5.0, 0.0, 0.0, 0.0]])
    assert loss(near, target) < loss(far, target)
    assert torch.isclose(F.cross_entropy(near, target), F.cross_entropy(far, target))  # plain CE cannot tell
    # the target of class y is row y; a soft (mixup) target is mapped through the same rows
    expected = -(rows[3] * F.log_softmax(near, -1)).sum()
    assert torch.isclose(loss(near, target), expected)
    mixed = torch.tensor([[0.0, 0.5, 0.0, 0.5]])
    assert torch.isclose(loss(near, mixed), -((0.5 * rows[1] + 0.5 * rows[3]) * F.log_softmax(near, -1)).sum())
    # a large scale is plain cross-entropy
    sharp = build_loss(LossConfig(name="ordinal", ordinal_scale=50.0), np.ones(4))
    assert torch.isclose(sharp(LOGITS[:, :4], TARGETS % 4), F.cross_entropy(LOGITS[:, :4], TARGETS % 4), atol=1e-5)


def test_logreg_probe_refuses_a_loss_it_cannot_use():
    import pytest

    from fgvc.config import load_config
    from fgvc.errors import ConfigError

    with pytest.raises(ConfigError, match="loss.name 'ordinal' cannot be used with probe.head: logreg"):
        load_config(None, ["train.engine=probe", "probe.head=logreg", "loss.name=ordinal"])
    load_config(None, ["train.engine=probe", "probe.head=linear", "loss.name=ordinal"])


def test_pairwise_confusion_charges_only_pairs_of_different_classes():
    from fgvc.train.losses import pairwise_confusion

    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [1.0, 1.0], [0.0, 2.0]])
    probs = logits.softmax(-1)
    # pairs (0, 2) and (1, 3): the first pair has different labels, the second the same
    targets = torch.tensor([0, 1, 1, 1])
    expected = torch.linalg.vector_norm(probs[0] - probs[2]) / 4
    assert torch.allclose(pairwise_confusion(logits, targets), expected)
    assert pairwise_confusion(logits, torch.tensor([1, 1, 1, 1])) == 0
    # an odd last image is left out; one image has no pair
    assert torch.allclose(pairwise_confusion(torch.cat([logits, logits[:1]]), torch.tensor([0, 1, 1, 1, 0])),
                          expected * 4 / 4)
    assert pairwise_confusion(logits[:1], targets[:1]) == 0
    # soft (one-hot) targets pair by their argmax
    assert torch.allclose(pairwise_confusion(logits, F.one_hot(targets, 2).float()), expected)


def test_confusion_is_added_to_the_training_loss(tiny_overrides):
    """The same batch and weights: the loss with loss.confusion is the loss without it plus the weighted term."""
    import numpy as np

    from fgvc.config import load_config
    from fgvc.models.assembly import build_network
    from fgvc.train.losses import pairwise_confusion
    from fgvc.train.module import Classifier

    cfg = load_config(None, tiny_overrides)
    torch.manual_seed(0)
    model, _ = build_network(cfg, 3, pretrained=False)
    images, targets = torch.randn(6, 3, 24, 24), torch.tensor([0, 1, 2, 2, 1, 0])
    losses = {}
    for weight in (0.0, 2.5):
        module = Classifier(model, cfg.model_copy(update={"loss": cfg.loss.model_copy(update={"confusion": weight})}),
                            np.array([2, 2, 2]))
        module.log = lambda *a, **k: None
        losses[weight] = module.training_step((images, targets), 0)
    model.train()
    term = pairwise_confusion(model(images), targets)
    assert torch.allclose(losses[2.5], losses[0.0] + 2.5 * term, atol=1e-5)
    assert term > 0

"""API-Net's parts on hand-made tensors: the nearest same-class and other-class partners, the pairs of
a batch, the gates and attentive features, the score-ranking loss, the loss of one training step,
and the config (settings reach the model, are refused under another method, mixup is refused)."""

import pytest
import timm
import torch
import torch.nn.functional as F

from fgvc.config import load_config
from fgvc.errors import ConfigError
from fgvc.models.methods.api_net import (
    ApiNet,
    api_net,
    attentive_features,
    nearest_partners,
    pairs_of,
    score_ranking_loss,
)

# five images on a line (1-D features, padded with a zero): distances are plain differences
POINTS = torch.tensor([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [3.5, 0.0], [10.0, 0.0]])
LABELS = torch.tensor([0, 0, 1, 0, 2])


def test_each_image_gets_its_nearest_same_class_and_nearest_other_class_partner():
    intra, inter, has_intra, has_inter = nearest_partners(POINTS, LABELS)
    # image 0 (at 0): class 0 at 1 and 3.5 -> 1; other classes at 3 and 10 -> 2
    # image 1 (at 1): class 0 at 0 (1 away) and 3.5 (2.5) -> 0; other: 3 -> 2
    # image 2 (at 3, class 1): no other image of class 1; other classes: 3.5 -> 3
    # image 3 (at 3.5): class 0 at 1 (2.5) and 0 (3.5) -> 1; other: 3 -> 2
    # image 4 (at 10, class 2): alone in its class; other: 3.5 -> 3
    assert has_intra.tolist() == [True, True, False, True, False]
    assert has_inter.tolist() == [True] * 5
    assert intra[has_intra].tolist() == [1, 0, 1]
    assert inter.tolist() == [2, 2, 3, 2, 3]
    # the distance is Euclidean in every dimension, not the first alone
    lifted = POINTS.clone()
    lifted[1, 1] = 5.0  # image 1 now sqrt(1 + 25) from image 0, farther than image 3 (3.5)
    assert nearest_partners(lifted, LABELS)[0][0] == 3


def test_the_batch_pairs_are_intra_pairs_of_those_that_have_one_then_every_inter_pair():
    first, second = pairs_of(POINTS, LABELS)
    assert first.tolist() == [0, 1, 3, 0, 1, 2, 3, 4]
    assert second.tolist() == [1, 0, 1, 2, 2, 3, 2, 3]
    # one class in the batch: intra pairs only; one image: no pair at all
    first, second = pairs_of(POINTS[:2], LABELS[:2])
    assert (first.tolist(), second.tolist()) == ([0, 1], [1, 0])
    assert pairs_of(POINTS[:1], LABELS[:1])[0].numel() == 0


def test_gates_and_attentive_features_follow_the_formulas():
    x1 = torch.tensor([[1.0, -2.0, 0.5]])
    x2 = torch.tensor([[0.0, 3.0, -1.0]])
    mutual = torch.tensor([[2.0, 0.5, -1.0]])
    self1, other1, self2, other2 = attentive_features(x1, x2, mutual)
    def sig(v):
        return 1 / (1 + torch.exp(-torch.tensor(v)))

    g1 = torch.stack([sig(2.0), sig(-1.0), sig(-0.5)])  # sigmoid(x_m * x_1)
    g2 = torch.stack([sig(0.0), sig(1.5), sig(1.0)])  # sigmoid(x_m * x_2)
    assert torch.allclose(self1[0], x1[0] * (1 + g1))
    assert torch.allclose(other1[0], x1[0] * (1 + g2))
    assert torch.allclose(self2[0], x2[0] * (1 + g2))
    assert torch.allclose(other2[0], x2[0] * (1 + g1))
    assert self1[0, 0].item() == pytest.approx(1 + 1 / (1 + torch.exp(torch.tensor(-2.0)).item()))


def test_the_ranking_loss_is_zero_past_the_margin_and_positive_otherwise():
    targets = torch.tensor([0, 1])
    # softmax of [log a, log b] is [a, b]: true-class scores chosen by hand
    def logits(scores):
        return torch.tensor(scores).log()

    ahead = logits([[0.8, 0.2], [0.3, 0.7]])  # true scores 0.8 and 0.7
    behind = logits([[0.7, 0.3], [0.4, 0.6]])  # true scores 0.7 and 0.6: 0.1 lower, margin 0.05
    assert score_ranking_loss(ahead, behind, targets, 0.05).item() == 0
    # the other way round: each row costs margin + 0.1
    assert score_ranking_loss(behind, ahead, targets, 0.05).item() == pytest.approx(0.15, abs=1e-6)
    # ahead by less than the margin: 0.2 - 0.1 each
    assert score_ranking_loss(ahead, behind, targets, 0.2).item() == pytest.approx(0.1, abs=1e-6)
    # one row past the margin, one not: their mean
    mixed = logits([[0.7, 0.3], [0.2, 0.8]])  # row 0: 0.8 vs 0.7 (ok); row 1: 0.7 vs 0.8 (-0.1)
    assert score_ranking_loss(ahead, mixed, targets, 0.05).item() == pytest.approx(0.15 / 2, abs=1e-6)


def _api_net(dropout=0.0, margin=0.05, rank_weight=1.0):
    backbone = timm.create_model("resnet10t", pretrained=False, num_classes=3)
    return ApiNet(backbone, 3, 16, dropout, margin, rank_weight)


class _Features(torch.nn.Module):
    """A stand-in timm backbone whose pooled features are its input (B, D): hand-made features."""

    num_features = 4

    def forward_features(self, x):
        return x

    def forward_head(self, x, pre_logits=False):
        return x

    def reset_classifier(self, num_classes):
        pass


def test_the_training_loss_is_the_criterion_on_four_attentive_features_plus_the_ranking():
    torch.manual_seed(0)
    model = ApiNet(_Features(), 3, 16, 0.0, 0.3, 2.0).eval()
    features = torch.randn(5, 4) * 2
    targets = torch.tensor([0, 1, 0, 2, 1])
    loss, logits = model.training_loss(features, targets, F.cross_entropy)
    first, second = pairs_of(features, targets)
    assert len(first) == 4 + 5  # image 3 (class 2) has no same-class partner
    x1, x2 = features[first], features[second]
    mutual = model.mutual(torch.cat([x1, x2], 1))
    self1, other1, self2, other2 = attentive_features(x1, x2, mutual)
    labels = torch.cat([targets[first], targets[second]])
    self_logits = model.classifier(torch.cat([self1, self2]))
    other_logits = model.classifier(torch.cat([other1, other2]))
    ranking = score_ranking_loss(self_logits, other_logits, labels, 0.3)
    expected = F.cross_entropy(torch.cat([self_logits, other_logits]), torch.cat([labels, labels])) + 2.0 * ranking
    assert torch.allclose(loss, expected, atol=1e-6)
    assert torch.allclose(logits, model.classifier(features))  # the batch's logits = the prediction
    assert torch.equal(logits, model(features))
    # the parts each count: the ranking term, and self and other features are classified apart
    assert ranking > 0.05
    assert (F.cross_entropy(self_logits, labels) - F.cross_entropy(other_logits, labels)).abs() > 1e-3
    # one image: nothing to pair, the criterion on the prediction
    loss, logits = model.training_loss(features[:1], targets[:1], F.cross_entropy)
    assert torch.allclose(loss, F.cross_entropy(model(features[:1]), targets[:1]), atol=1e-6)


def test_every_part_learns_and_the_prediction_ignores_the_pair_modules():
    torch.manual_seed(1)
    model = _api_net(dropout=0.5).train()
    loss, logits = model.training_loss(torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 0, 1]), F.cross_entropy)
    assert logits.shape == (4, 3)
    loss.backward()
    for part in (model.classifier.weight, model.mutual[0].weight, model.mutual[2].weight,
                 next(model.backbone.parameters())):
        assert part.grad is not None and part.grad.abs().sum() > 0
    model.eval()
    images = torch.rand(2, 3, 32, 32)
    before = model(images)
    torch.nn.init.normal_(model.mutual[0].weight)
    assert torch.equal(model(images), before)


def test_a_vit_works_through_its_pooled_token():
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=3, img_size=32)
    model = ApiNet(vit, 3, 8, 0.0, 0.05, 1.0)
    loss, logits = model.training_loss(torch.rand(3, 3, 32, 32), torch.tensor([0, 0, 1]), F.cross_entropy)
    assert logits.shape == (3, 3) and torch.isfinite(loss)
    assert model.mutual[2].out_features == vit.num_features


def test_config_reaches_the_model_and_is_refused_elsewhere():
    cfg = load_config(None, ["method.name=api_net", "method.api_net.hidden=32", "method.api_net.margin=0.1",
                             "method.api_net.rank_weight=0.5", "method.api_net.dropout=0.2"])
    model = api_net(timm.create_model("resnet10t", pretrained=False, num_classes=4), 4, cfg.method)
    assert (model.mutual[0].out_features, model.margin, model.rank_weight, model.drop.p) == (32, 0.1, 0.5, 0.2)
    assert model.classifier.out_features == 4
    with pytest.raises(ConfigError, match=r"method.api_net.margin: settings of method.name: api_net, which this "
                                          r"config does not use \(method.name: dcl\)"):
        load_config(None, ["method.name=dcl", "method.api_net.margin=0.1"])
    with pytest.raises(ConfigError, match="method.api_net.hidden: settings of method.name: api_net"):
        load_config(None, ["method.api_net.hidden=64"])  # plain
    with pytest.raises(ConfigError, match="method.name: api_net needs each image's own label"):
        load_config(None, ["method.name=api_net", "data.mixup.mixup_alpha=0.2"])

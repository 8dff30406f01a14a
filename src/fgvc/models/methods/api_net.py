"""API-Net (``method.name: api_net``): Zhuang, Wang, Qiao, "Learning Attentive Pairwise Interaction for
Fine-Grained Classification", AAAI 2020; the authors' code is github.com/PeiqinZhuang/API-Net
(models.py ``API_Net``, ``get_pairs``; train.py the losses). Published on CUB-200-2011 at 448 px:
87.7 % (ResNet-50), 88.6 % (ResNet-101).

Training only; the prediction is the backbone, its own pooling and a linear classifier, so an API-Net
run evaluates, explains and exports like a plain one.

- *Pairs*: for each image i of the batch, the closest other image of its class (intra pair) and the
  closest image of another class (inter pair), by the Euclidean distance of the pooled features x
  (chosen without gradient, as the authors'). Each pair (x_1, x_2) is one image and its partner.
- *Mutual vector*: x_m = MLP([x_1, x_2]): Linear(2D, hidden), dropout, Linear(hidden, D), no
  activation between them (the authors' ``map1``, ``drop``, ``map2``).
- *Gates*: g_i = sigmoid(x_m * x_i), element-wise; each image's own gate and its partner's give four
  attentive features: x_1^self = x_1 + x_1 * g_1, x_1^other = x_1 + x_1 * g_2, x_2^self = x_2 + x_2 * g_2,
  x_2^other = x_2 + x_2 * g_1.
- *Losses*: the configured criterion classifies all four (after dropout) with their own images'
  labels; the score-ranking loss asks that the softmax score of the true class from x_i^self exceed
  the one from x_i^other by ``margin``: mean of max(0, margin - (p^self - p^other)).

    loss = criterion(4 attentive features of every pair) + rank_weight x ranking

Faithful to the authors' code: the pair rule (squared Euclidean distance, self and the other class
masked, argmin), intra pairs then inter pairs in one batch, the MLP without activation, one dropout
(0.5) before ``map2`` and before the classifier, the margin 0.05 and weight 1, the prediction as the
classifier on the pooled features without pairs. Differs:

- batches: the authors sample 30 classes x 4 images per batch (``BalancedBatchSampler``), so every
  image has a same-class partner. fgvc's batches are drawn at random, so an image may have none:
  its intra pair is skipped (it still enters its inter pair), and with many classes and small
  batches few intra pairs remain. A batch of one class has no inter pairs; a batch with no pair at
  all (one image) falls back to the criterion on the plain logits.
- pooling: the backbone's own ``forward_head`` (pre-logits) instead of a fixed 14 x 14 average pool,
  so any timm backbone with pooled features works, ViTs included (their pooled token).
- the loss is the criterion's mean over all 4 x pairs attentive features (as theirs) plus the ranking
  loss over the 2 x pairs (self, other) scores; the authors' schedule (backbone frozen for 8 epochs,
  two SGD optimisers) is not built: fgvc's strategy and optimiser settings apply.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fgvc.config import MethodConfig
from fgvc.models.methods.base import Criterion, FineGrainedModel, feature_channels
from fgvc.registry import register_method


def nearest_partners(features: torch.Tensor, targets: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """For each row of ``features`` (B, D): the index of the nearest other row of the same label
    (intra), of the nearest row of another label (inter), and whether each exists (B,) booleans.
    Nearest by Euclidean distance, without gradient; ties go to the lower index."""
    with torch.no_grad():
        vectors = features.detach().float()
        distance = torch.cdist(vectors, vectors)
        same = targets[:, None] == targets[None, :]
        itself = torch.eye(len(targets), dtype=torch.bool, device=targets.device)
        intra_distance = distance.masked_fill(~same | itself, float("inf"))
        inter_distance = distance.masked_fill(same, float("inf"))
        intra, inter = intra_distance.argmin(1), inter_distance.argmin(1)
        has_intra = (same & ~itself).any(1)
        has_inter = (~same).any(1)
    return intra, inter, has_intra, has_inter


def pairs_of(features: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(first, second) indices of the batch's pairs: every image with its intra partner (those that
    have one), then every image with its inter partner (those that have one)."""
    intra, inter, has_intra, has_inter = nearest_partners(features, targets)
    index = torch.arange(len(targets), device=targets.device)
    first = torch.cat([index[has_intra], index[has_inter]])
    second = torch.cat([intra[has_intra], inter[has_inter]])
    return first, second


def attentive_features(x1: torch.Tensor, x2: torch.Tensor, mutual: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x1 self, x1 other, x2 self, x2 other): each feature plus itself weighted by its own gate
    sigmoid(mutual * x) or by its partner's."""
    gate1, gate2 = torch.sigmoid(mutual * x1), torch.sigmoid(mutual * x2)
    return x1 + x1 * gate1, x1 + x1 * gate2, x2 + x2 * gate2, x2 + x2 * gate1


def score_ranking_loss(self_logits: torch.Tensor, other_logits: torch.Tensor, targets: torch.Tensor,
                       margin: float) -> torch.Tensor:
    """Mean of max(0, margin - (p_self - p_other)) where p is the softmax score of the true class (the
    authors' MarginRankingLoss with target 1)."""
    rows = torch.arange(len(targets), device=targets.device)
    own = self_logits.float().softmax(1)[rows, targets]
    other = other_logits.float().softmax(1)[rows, targets]
    return F.relu(margin - (own - other)).mean()


class ApiNet(FineGrainedModel):
    """backbone -> its pooling -> linear classifier; while training, pairs of the batch's pooled
    features interact through a mutual vector and gates."""

    def __init__(self, backbone: nn.Module, num_classes: int, hidden: int, dropout: float, margin: float,
                 rank_weight: float):
        super().__init__(backbone)
        pooled = int(getattr(backbone, "head_hidden_size", 0) or feature_channels(backbone))
        self.margin, self.rank_weight = margin, rank_weight
        self.mutual = nn.Sequential(nn.Linear(2 * pooled, hidden), nn.Dropout(dropout), nn.Linear(hidden, pooled))
        self.drop = nn.Dropout(dropout)
        self.classifier = nn.Linear(pooled, num_classes)

    def pooled(self, images: torch.Tensor) -> torch.Tensor:
        """(B, D): the backbone's own pooled features (pre-logits), CNN or ViT."""
        return self.backbone.forward_head(self.backbone.forward_features(images), pre_logits=True)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pooled(images))

    def training_loss(self, images: torch.Tensor, targets: torch.Tensor, criterion: Criterion
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.pooled(images)
        logits = self.classifier(features)
        first, second = pairs_of(features, targets)
        if len(first) == 0:  # one image: nothing to pair with
            return criterion(logits, targets), logits
        x1, x2 = features[first], features[second]
        mutual = self.mutual(torch.cat([x1, x2], dim=1))
        self1, other1, self2, other2 = attentive_features(x1, x2, mutual)
        labels1, labels2 = targets[first], targets[second]
        self_logits = self.classifier(self.drop(torch.cat([self1, self2])))
        other_logits = self.classifier(self.drop(torch.cat([other1, other2])))
        labels = torch.cat([labels1, labels2])
        classification = criterion(torch.cat([self_logits, other_logits]), torch.cat([labels, labels]))
        ranking = score_ranking_loss(self_logits, other_logits, labels, self.margin)
        return classification + self.rank_weight * ranking, logits


@register_method("api_net", settings="api_net", needs="any", mixup=False, paper="Zhuang et al. 2020, API-Net")
def api_net(model: nn.Module, num_classes: int, cfg: MethodConfig) -> nn.Module:
    """pairs of similar images learn a mutual vector; gated features and a score-ranking loss"""
    s = cfg.api_net
    return ApiNet(model, num_classes, s.hidden, s.dropout, s.margin, s.rank_weight)

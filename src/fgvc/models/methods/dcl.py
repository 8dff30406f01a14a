"""DCL (``method.name: dcl``): Chen, Bai, Zhang, Mei, "Destruction and Construction Learning for
Fine-grained Image Recognition", CVPR 2019; the authors' code is github.com/JDAI-CV/DCL
(models/LoadModel.py, transforms/functional.py ``swap``, utils/dataset_DCL.py, utils/train_model.py,
utils/eval_model.py). Published on CUB-200-2011: 87.8 % (ResNet-50, 448 px) against 85.5 % for the
plain ResNet-50 in the paper's table.

Training only; the prediction is the backbone, its own pooling and a linear classifier, so a DCL run
evaluates, explains and exports like a plain one.

- *Destruction* (Region Confusion Mechanism): each training image is cut into N x N patches that
  are shuffled locally: along each row, patch j goes to the rank of q_j = j + r_j (r_j uniform), then
  the same along each column, so a patch moves at most ``shuffle_range`` places across and at most as
  many down. The batch becomes the originals followed by their destroyed copies; the configured
  criterion classifies both with the image's label.
- *Adversarial* loss: a second linear layer on the pooled features tells originals from destroyed
  images (cross-entropy), so the features keep what the shuffle adds (noise) apart from the class.
- *Construction* (region alignment): a 1x1 conv on the last feature map, average-pooled to N x N and
  squashed by tanh, predicts at each cell where its patch came from: the row-major index p of the
  original position as (p - floor(N^2 / 2)) / N^2, with an L1 loss (originals: their own positions).

    loss = criterion(both) + adversarial_weight x CE(adversarial) + alignment_weight x L1(alignment)

Faithful to the authors' code: one linear index a cell (their 1-channel ``Convmask``, avg-pooled,
tanh) and its normalisation; L1 on it; the adversarial classifier's 2 x num_classes outputs (their
``cls_2xmul``: a destroyed image of class c is c + num_classes) by default, ``adversarial_outputs:
binary`` gives their ``cls_2`` (2 outputs, the paper's d); both classifiers without bias; originals
and destroyed copies in one batch (one set of BatchNorm statistics); the loss weights (1, 1, 1 for
CUB). Differs:

- the shuffle follows the paper's formula, not the authors' code (theirs shuffles a sliding window
  of 2 patches, which lets a patch drift arbitrarily far right). The paper draws r from U(-k, k),
  which moves a patch up to 2k - 1 places; here r is drawn from an interval of width s + 1
  (s = ``shuffle_range``), so no patch moves more than s: the paper's k is (s + 1) / 2.
- it runs on the normalised batch tensor inside ``training_loss`` (torch's RNG, so runs repeat), not
  on PIL images in the data loader; the true origin of each cell is known exactly (the authors match
  patches by mean colour) and patches are not resized (the authors crop 10 px off the border and
  resize the shuffled mosaic back).
- the pooling to N x N is adaptive, so any feature map side works (the authors' 2x2 pooling assumes
  14 cells at 448 px); the pooled vector is the backbone's own ``forward_head`` (pre-logits).
- an image side H that is not a multiple of N: the N x N grid of floor(H / N) px patches is centred
  and the fewer than N rows (columns) left over stay in place.
- the prediction is the classifier alone (the authors' ``cls_2xmul`` evaluation adds both halves of
  the adversarial classifier's outputs), so the model exports like a plain one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fgvc.config import MethodConfig
from fgvc.errors import ConfigError
from fgvc.models.methods.base import Criterion, FineGrainedModel, feature_channels
from fgvc.registry import register_method


def local_permutations(shape: tuple[int, ...], shuffle_range: int, device: torch.device) -> torch.Tensor:
    """Random permutations of the last axis of ``shape``, each entry the ORIGINAL index of what lands at
    that place; no index moves more than ``shuffle_range`` places.

    The paper's jittered sort: place j gets key j + r_j, r_j uniform in [0, s + 1), and the order of the
    keys is the new order. Patch i can pass patch j > i only if j - i < r_i - r_j < s + 1, so at most s
    patches pass it from either side. A stable sort keeps ties (rounding) in their original order."""
    length = shape[-1]
    keys = torch.arange(length, device=device, dtype=torch.float32) + (shuffle_range + 1) * torch.rand(
        shape, device=device)
    return keys.argsort(dim=-1, stable=True)


def region_order(batch: int, regions: int, shuffle_range: int, device: torch.device) -> torch.Tensor:
    """(B, N*N): for each image and each cell p (row-major) of the destroyed image, the row-major index
    of the original patch placed there; rows shuffled first, then columns (the paper's RCM)."""
    # along each row: (B, row i, place j) -> original column
    columns = local_permutations((batch, regions, regions), shuffle_range, device)
    grid = torch.arange(regions, device=device)[:, None] * regions + columns
    # then along each column: (B, place i, column j) -> row of the row-shuffled grid it comes from
    rows = local_permutations((batch, regions, regions), shuffle_range, device).transpose(1, 2)
    return grid.gather(1, rows).flatten(1)


def patch_grid(height: int, width: int, regions: int) -> tuple[int, int, int, int]:
    """(top, left, patch height, patch width) of the centred N x N grid of whole patches; one ConfigError
    line when a side has fewer pixels than patches."""
    if height < regions or width < regions:
        raise ConfigError(f"method.dcl.regions is {regions} but the images are {height} x {width} px: give at "
                          "most as many regions as the shorter side has pixels (the authors: 7 at 448 px)")
    patch_h, patch_w = height // regions, width // regions
    return (height - regions * patch_h) // 2, (width - regions * patch_w) // 2, patch_h, patch_w


def destroy(images: torch.Tensor, order: torch.Tensor, regions: int) -> torch.Tensor:
    """``images`` (B, C, H, W) with the patches of the centred N x N grid rearranged: cell p of image b
    receives original patch ``order[b, p]`` (row-major). Pixels outside the grid stay."""
    batch, channels, height, width = images.shape
    top, left, ph, pw = patch_grid(height, width, regions)
    n = regions
    inside = images[:, :, top:top + n * ph, left:left + n * pw]
    patches = inside.reshape(batch, channels, n, ph, n, pw).permute(0, 2, 4, 1, 3, 5).reshape(
        batch, n * n, channels, ph, pw)
    moved = patches.gather(1, order[:, :, None, None, None].expand_as(patches))
    mosaic = moved.reshape(batch, n, n, channels, ph, pw).permute(0, 3, 1, 4, 2, 5).reshape(
        batch, channels, n * ph, n * pw)
    destroyed = images.clone()
    destroyed[:, :, top:top + n * ph, left:left + n * pw] = mosaic
    return destroyed


def alignment_targets(order: torch.Tensor, regions: int) -> torch.Tensor:
    """The construction loss's targets: each cell's original row-major index p as (p - N^2 // 2) / N^2
    (the authors' ``swap_law``), in [-1/2, 1/2) where tanh reaches."""
    cells = regions * regions
    return (order.float() - cells // 2) / cells


def adversarial_labels(targets: torch.Tensor, num_classes: int, outputs: str) -> torch.Tensor:
    """Labels of the original-vs-destroyed classifier for the batch [originals; destroyed]: ``classes``:
    c for an original of class c, c + num_classes for its destroyed copy; ``binary``: 0 and 1."""
    if outputs == "binary":
        return torch.cat([torch.zeros_like(targets), torch.ones_like(targets)])
    return torch.cat([targets, targets + num_classes])


class Dcl(FineGrainedModel):
    """backbone -> its pooling -> linear classifier; while training, also an original-vs-destroyed
    classifier and a 1x1 conv locating each region of the last feature map."""

    def __init__(self, backbone: nn.Module, num_classes: int, regions: int, shuffle_range: int,
                 adversarial_outputs: str, adversarial_weight: float, alignment_weight: float):
        super().__init__(backbone)
        channels = feature_channels(backbone)
        pooled = int(getattr(backbone, "head_hidden_size", 0) or channels)  # MobileNetV3: its conv head's
        self.num_classes, self.regions, self.shuffle_range = num_classes, regions, shuffle_range
        self.adversarial_outputs = adversarial_outputs
        self.adversarial_weight, self.alignment_weight = adversarial_weight, alignment_weight
        self.classifier = nn.Linear(pooled, num_classes, bias=False)
        self.adversarial = nn.Linear(pooled, 2 * num_classes if adversarial_outputs == "classes" else 2, bias=False)
        self.alignment = nn.Conv2d(channels, 1, 1)

    def features(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(last feature map (B, C, h, w), pooled features (B, D) the classifiers read)."""
        maps = self.feature_map(images, "dcl locates regions")
        return maps, self.backbone.forward_head(maps, pre_logits=True)

    def locate(self, maps: torch.Tensor) -> torch.Tensor:
        """(B, N*N) predicted origin of each region, row-major, in (-1, 1)."""
        cells = F.adaptive_avg_pool2d(self.alignment(maps), self.regions)  # any feature map side
        return torch.tanh(cells.float()).flatten(1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(images)[1])

    def training_loss(self, images: torch.Tensor, targets: torch.Tensor, criterion: Criterion
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        batch = images.shape[0]
        with torch.no_grad():
            order = region_order(batch, self.regions, self.shuffle_range, images.device)
            both = torch.cat([images, destroy(images, order, self.regions)])
            identity = torch.arange(self.regions ** 2, device=images.device).expand(batch, -1)
            where_from = alignment_targets(torch.cat([identity, order]), self.regions)
        maps, pooled = self.features(both)
        logits = self.classifier(pooled)
        classification = criterion(logits, torch.cat([targets, targets]))
        adversarial = F.cross_entropy(self.adversarial(pooled).float(),
                                      adversarial_labels(targets, self.num_classes, self.adversarial_outputs))
        alignment = F.l1_loss(self.locate(maps), where_from)
        loss = classification + self.adversarial_weight * adversarial + self.alignment_weight * alignment
        return loss, logits[:batch]


@register_method("dcl", settings="dcl", needs="cnn", mixup=False, paper="Chen et al. 2019, DCL")
def dcl(model: nn.Module, num_classes: int, cfg: MethodConfig) -> nn.Module:
    """shuffle the image's regions while training; learn the class, the shuffle and where regions came from"""
    s = cfg.dcl
    return Dcl(model, num_classes, s.regions, s.shuffle_range, s.adversarial_outputs, s.adversarial_weight,
               s.alignment_weight)

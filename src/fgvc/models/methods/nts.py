"""NTS-Net (``method.name: nts``): Yang, Luo, Wang, Hu, Gao, Wang, "Learning to Navigate for
Fine-grained Classification", ECCV 2018; the authors' code is github.com/yangze0930/NTS-Net
(core/model.py, core/anchors.py). Published on CUB-200-2011: 87.5 % (ResNet-50, 448 px) against
84.5 % for their plain ResNet-50.

Three agents share one backbone. The *navigator* (a small conv pyramid on the last feature map)
scores anchors of several sizes and shapes; after non-maximum suppression its top ``proposals``
regions are cut from the zero-padded image, resized to ``part_size`` and read by the same backbone.
The *teacher* (a linear part classifier) is trained on every region, and its confidence in the true
class ranks the regions: the navigator learns that order through a pairwise hinge (ranking) loss. The
*scrutiniser* (a linear layer on the image's feature and the top ``parts`` regions' features) gives
the prediction. Loss: raw CE + scrutiniser CE + teacher CE + ranking loss, as the authors' train.py.

Faithful: the navigator's layers (128 channels; 3x3 convs at strides 1, 2, 2; 6, 6 and 9 anchors a
cell), the anchor sizes, scales and aspect ratios (scaled from the authors' 448 px to the input),
the navigator reading a detached feature map (only the ranking loss trains it), zero padding, the
ranking loss and its margin of 1, the four losses summed. Differs: the anchor centres spread evenly
over the image (the authors' third level uses a 128 px stride at 448 px, which puts its last centre
on the border); the crops are bilinear roi_align with an adaptive number of samples a bin (the
authors' resize of the integer box, corners aligned); when NMS leaves fewer than ``proposals``
boxes, the best suppressed ones fill the places (the authors' code fails then); no dropout on the
pooled features (theirs also stays on at test time); the configured criterion replaces plain CE.
Prediction crops only the ``parts`` regions the scrutiniser reads.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import batched_nms, nms, roi_align

from fgvc.config import MethodConfig
from fgvc.errors import ConfigError
from fgvc.models.methods.base import Criterion, FineGrainedModel, feature_channels
from fgvc.registry import register_method

REFERENCE_SIDE = 448  # the image side the authors' anchor sizes are given for
_THIRDS = (2 ** (1 / 3), 2 ** (2 / 3))
_RATIOS = (0.667, 1.0, 1.5)  # width / height
# one per navigator level: (side in px at 448 px, scales, aspect ratios); the authors' p3, p4, p5
ANCHOR_LEVELS = ((48, _THIRDS, _RATIOS), (96, _THIRDS, _RATIOS), (192, (1.0, *_THIRDS), _RATIOS))


def anchor_boxes(image_size: tuple[int, int], grids: list[tuple[int, int]]) -> torch.Tensor:
    """(N, 4) boxes x0, y0, x1, y1 in pixels: at each level, every (scale, ratio) box centred on every
    cell of that level's ``grids`` (rows, cols), in the order the navigator's scores are flattened."""
    height, width = image_size
    boxes = []
    for (side, scales, ratios), (rows, cols) in zip(ANCHOR_LEVELS, grids):
        cy = (torch.arange(rows, dtype=torch.float32) + 0.5) * (height / rows)
        cx = (torch.arange(cols, dtype=torch.float32) + 0.5) * (width / cols)
        cy, cx = torch.meshgrid(cy, cx, indexing="ij")
        for scale in scales:
            for ratio in ratios:
                half_h = side * scale / math.sqrt(ratio) * height / REFERENCE_SIDE / 2
                half_w = side * scale * math.sqrt(ratio) * width / REFERENCE_SIDE / 2
                boxes.append(torch.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], -1).reshape(-1, 4))
    return torch.cat(boxes)


def anchor_reach(image_size: tuple[int, int], grids: list[tuple[int, int]]) -> tuple[int, int]:
    """(rows, cols) of zero padding around the image that holds every box of :func:`anchor_boxes`."""
    height, width = image_size
    reach_y = reach_x = 0.0
    for (side, scales, ratios), (rows, cols) in zip(ANCHOR_LEVELS, grids):
        tallest = max(side * s / math.sqrt(r) for s in scales for r in ratios) * height / REFERENCE_SIDE
        widest = max(side * s * math.sqrt(r) for s in scales for r in ratios) * width / REFERENCE_SIDE
        # the first centre sits half a cell in from the border
        reach_y = max(reach_y, (tallest - height / rows) / 2)
        reach_x = max(reach_x, (widest - width / cols) / 2)
    return math.ceil(reach_y), math.ceil(reach_x)


def top_boxes(boxes: torch.Tensor, scores: torch.Tensor, count: int, iou_threshold: float) -> torch.Tensor:
    """(B, count) indices into ``boxes`` (N, 4, shared by the images, coordinates >= 0) of each image's
    best-scored boxes that NMS keeps, best first; suppressed boxes fill the places NMS leaves empty."""
    images, n = scores.shape
    if count > n:
        raise ConfigError(f"method.nts.proposals is {count} but the navigator has only {n} anchors at this "
                          "input size; lower method.nts.proposals or raise data.transforms.crop")
    scores = scores.detach().float()
    flat_scores = scores.reshape(-1)
    if torch.compiler.is_exporting():
        # the exporter needs a loop-free graph: one NMS with each image's boxes moved to a region of
        # its own, so boxes of two images never overlap (torchvision's coordinate trick)
        shift = (boxes.max() + 1) * torch.arange(images, device=boxes.device, dtype=boxes.dtype)
        keep = nms((boxes[None] + shift[:, None, None]).reshape(-1, 4), flat_scores, iou_threshold)
    else:
        owner = torch.arange(images, device=boxes.device).repeat_interleave(n)
        keep = batched_nms(boxes.repeat(images, 1), flat_scores, owner, iou_threshold)
    kept = torch.zeros_like(flat_scores).index_fill(0, keep, 1.0).view(images, n)
    # lift the kept boxes above every suppressed one without changing the order inside either group
    span = (scores.amax(1, keepdim=True) - scores.amin(1, keepdim=True)) + 1
    return (scores + kept * span).topk(count, dim=1).indices


def crop_regions(images: torch.Tensor, boxes: torch.Tensor, size: int, pad: tuple[int, int]) -> torch.Tensor:
    """(B * K, C, size, size): the pixels inside each of ``boxes`` (B, K, 4; x0, y0, x1, y1 in the image's
    pixels, x1 and y1 exclusive), from the image zero-padded by ``pad`` (rows, cols), resized bilinearly."""
    batch, count = boxes.shape[:2]
    padded = F.pad(images, (pad[1], pad[1], pad[0], pad[0]))
    shifted = boxes.to(images.dtype) + torch.tensor([pad[1], pad[0], pad[1], pad[0]], dtype=images.dtype,
                                                    device=images.device)
    owner = torch.arange(batch, device=images.device, dtype=images.dtype)[:, None, None].expand(batch, count, 1)
    rois = torch.cat([owner, shifted], 2).reshape(-1, 5)
    # aligned: pixel i spans [i, i + 1), so a box [x0, x1) holds exactly pixels x0 .. x1 - 1;
    # sampling_ratio 0: as many samples a bin as the box is larger than the crop (no aliasing)
    return roi_align(padded, rois, (size, size), spatial_scale=1.0, sampling_ratio=0, aligned=True)


def ranking_loss(scores: torch.Tensor, teacher_losses: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """The navigator's pairwise hinge: for regions i, j of an image where the teacher's loss on i is
    lower than on j, ``max(0, margin - s_i + s_j)``; summed over pairs, averaged over images."""
    better = (teacher_losses[:, :, None] < teacher_losses[:, None, :]).to(scores.dtype)
    hinge = F.relu(margin - scores[:, :, None] + scores[:, None, :])
    return (hinge * better).sum() / scores.shape[0]


class Navigator(nn.Module):
    """Informativeness scores of every anchor: 3x3 convs at strides 1, 2, 2 over the last feature map,
    a 1x1 conv at each level scoring its anchors (one per scale and aspect ratio)."""

    def __init__(self, channels: int, width: int = 128):
        super().__init__()
        self.down = nn.ModuleList([nn.Conv2d(channels, width, 3, 1, 1), nn.Conv2d(width, width, 3, 2, 1),
                                   nn.Conv2d(width, width, 3, 2, 1)])
        self.score = nn.ModuleList([nn.Conv2d(width, len(scales) * len(ratios), 1)
                                    for _, scales, ratios in ANCHOR_LEVELS])

    def forward(self, maps: torch.Tensor) -> tuple[torch.Tensor, list[tuple[int, int]]]:
        """((B, N) scores, each level's grid (rows, cols))."""
        scores, grids = [], []
        for down, score in zip(self.down, self.score):
            maps = F.relu(down(maps))
            scores.append(score(maps).flatten(1))  # (anchor kind, row, col): the order of anchor_boxes
            grids.append((maps.shape[2], maps.shape[3]))
        return torch.cat(scores, 1), grids


class NtsNet(FineGrainedModel):
    """backbone -> navigator -> top regions -> backbone again -> scrutiniser on [image, parts]."""

    def __init__(self, backbone: nn.Module, num_classes: int, proposals: int, parts: int, part_size: int,
                 nms_threshold: float):
        super().__init__(backbone)
        channels = feature_channels(backbone)
        self.proposals, self.parts, self.part_size, self.nms_threshold = proposals, parts, part_size, nms_threshold
        self.navigator = Navigator(channels)
        self.raw_classifier = nn.Linear(channels, num_classes)
        self.part_classifier = nn.Linear(channels, num_classes)  # the teacher
        self.classifier = nn.Linear(channels * (parts + 1), num_classes)  # the scrutiniser

    def features(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(last feature map, pooled feature)."""
        maps = self.feature_map(images, "nts scores anchors")
        return maps, self.backbone.forward_head(maps, pre_logits=True)

    def navigate(self, images: torch.Tensor, maps: torch.Tensor, count: int
                 ) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
        """((B, count, 4) boxes in image pixels, (B, count) their navigator scores, best first; the
        padding that holds every anchor)."""
        scores, grids = self.navigator(maps.detach())  # as the authors: only the ranking loss trains it
        size = (images.shape[2], images.shape[3])
        pad = anchor_reach(size, grids)
        anchors = anchor_boxes(size, grids).to(images.device)
        # NMS on padded coordinates: all >= 0, as the coordinate trick needs
        chosen = top_boxes(anchors + torch.tensor([pad[1], pad[0], pad[1], pad[0]], device=images.device),
                           scores, count, self.nms_threshold)
        return anchors[chosen], scores.gather(1, chosen), pad

    def part_features(self, images: torch.Tensor, boxes: torch.Tensor, pad: tuple[int, int]) -> torch.Tensor:
        """(B, K, C) backbone features of the regions ``boxes`` (B, K, 4), cut from the image padded by ``pad``."""
        crops = crop_regions(images, boxes, self.part_size, pad)
        _, pooled = self.features(crops.detach())
        return pooled.reshape(boxes.shape[0], boxes.shape[1], -1)

    def scrutinise(self, pooled: torch.Tensor, parts: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.cat([pooled, parts[:, :self.parts].flatten(1)], 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        maps, pooled = self.features(images)
        boxes, _, pad = self.navigate(images, maps, self.parts)
        return self.scrutinise(pooled, self.part_features(images, boxes, pad))

    def training_loss(self, images: torch.Tensor, targets: torch.Tensor, criterion: Criterion
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        maps, pooled = self.features(images)
        boxes, scores, pad = self.navigate(images, maps, self.proposals)
        parts = self.part_features(images, boxes, pad)
        logits = self.scrutinise(pooled, parts)
        part_logits = self.part_classifier(parts.flatten(0, 1))
        part_targets = targets.repeat_interleave(self.proposals)
        # the teacher's per-region loss (the authors' list_loss) orders the regions for the navigator
        teacher = F.cross_entropy(part_logits.detach().float(), part_targets, reduction="none")
        loss = (criterion(self.raw_classifier(pooled), targets) + criterion(logits, targets)
                + criterion(part_logits, part_targets)
                + ranking_loss(scores.float(), teacher.view(-1, self.proposals)))
        return loss, logits


@register_method("nts", settings="nts", needs="cnn", mixup=False, paper="Yang et al. 2018, NTS-Net")
def nts(model: nn.Module, num_classes: int, cfg: MethodConfig) -> nn.Module:
    """a navigator proposes regions, a teacher ranks them, a scrutiniser reads the best ones"""
    settings = cfg.nts
    return NtsNet(model, num_classes, settings.proposals, settings.parts, settings.part_size,
                  settings.nms_threshold)

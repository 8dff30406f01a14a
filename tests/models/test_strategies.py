"""Trainable-parameter counts of every strategy on real timm architectures."""

import pytest
import timm
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from fgvc.config import StrategyConfig
from fgvc.errors import ConfigError
from fgvc.models.strategies import (
    apply_strategy,
    count_parameters,
    keep_frozen_norms_in_eval,
    merge_lora,
    unfreeze_stage_for_epoch,
)

RESNET18_FC_200 = 512 * 200 + 200  # 102,600


def resnet18():
    return timm.create_model("resnet18", pretrained=False, num_classes=200)


def vit():
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=200, img_size=32)


def test_linear_resnet18_known_figure():
    model = apply_strategy(resnet18(), StrategyConfig(name="linear"))
    assert count_parameters(model) == (11_279_112, RESNET18_FC_200)


def test_linear_keeps_frozen_batchnorm_in_eval_mode():
    model = apply_strategy(resnet18(), StrategyConfig(name="linear"))
    model.train()
    keep_frozen_norms_in_eval(model)
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    assert norms and not any(m.training for m in norms)


def test_partial_layer4_plus_head():
    model = apply_strategy(resnet18(), StrategyConfig(name="partial", unfreeze_last=1))
    layer4 = sum(p.numel() for p in model.layer4.parameters())
    assert count_parameters(model)[1] == layer4 + RESNET18_FC_200 == 8_496_328
    assert not model.layer3[0].conv1.weight.requires_grad and model.layer4[0].conv1.weight.requires_grad


def test_partial_last_two_vit_blocks_include_final_norm():
    model = apply_strategy(vit(), StrategyConfig(name="partial", unfreeze_last=2))
    expected = sum(p.numel() for p in model.blocks[-2:].parameters()) + sum(
        p.numel() for p in model.norm.parameters()) + 192 * 200 + 200
    assert count_parameters(model)[1] == expected


def test_partial_too_many_stages():
    with pytest.raises(ConfigError, match="unfreeze_last=9 but ResNet has 5 stages"):
        apply_strategy(resnet18(), StrategyConfig(name="partial", unfreeze_last=9))


def test_full_trains_everything():
    model = apply_strategy(resnet18(), StrategyConfig(name="full"))
    total, trainable = count_parameters(model)
    assert total == trainable == 11_279_112


def test_attention_only_vit():
    model = apply_strategy(vit(), StrategyConfig(name="attention"))
    per_block = (192 * 576 + 576) + (192 * 192 + 192)  # qkv + proj
    assert count_parameters(model)[1] == 12 * per_block + 192 * 200 + 200
    assert not model.blocks[0].mlp.fc1.weight.requires_grad
    with pytest.raises(ConfigError, match="needs a ViT"):
        apply_strategy(resnet18(), StrategyConfig(name="attention"))


def test_lora_counts_and_merge_matches_adapter_output():
    model = apply_strategy(vit(), StrategyConfig(name="lora", lora_rank=4, lora_alpha=8))
    per_block = 4 * 192 + 576 * 4  # A (r x in) + B (out x r) on qkv
    assert count_parameters(model)[1] == 12 * per_block + 192 * 200 + 200
    # make the adapters non-trivial, then merging must not change the function
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.02)
    model.eval()
    x = torch.randn(2, 3, 32, 32)
    before = model(x)
    merged = merge_lora(model)
    assert not any("lora" in n for n, _ in merged.named_parameters())
    assert torch.allclose(merged(x), before, atol=1e-5)


def test_gradual_opens_stages_top_down():
    model = apply_strategy(resnet18(), StrategyConfig(name="gradual", unfreeze_every=2))
    assert count_parameters(model)[1] == RESNET18_FC_200
    assert unfreeze_stage_for_epoch(model, StrategyConfig(name="gradual", unfreeze_every=2), 1) == 0
    assert unfreeze_stage_for_epoch(model, StrategyConfig(name="gradual", unfreeze_every=2), 2) == 1
    assert count_parameters(model)[1] == 8_496_328  # layer4 + head
    assert unfreeze_stage_for_epoch(model, StrategyConfig(name="gradual", unfreeze_every=2), 4) == 2
    assert model.layer3[0].conv1.weight.requires_grad and not model.layer2[0].conv1.weight.requires_grad

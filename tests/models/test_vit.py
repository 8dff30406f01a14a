"""fgvc's own ViT: registered with timm, both attention paths agree, position embeddings interpolate."""

import pytest
import timm
import torch
from timm.layers import resample_abs_pos_embed

import fgvc.models  # noqa: F401  (registers the models)
from fgvc.config import ModelConfig, StrategyConfig
from fgvc.models.factory import create_model
from fgvc.models.strategies import apply_strategy, count_parameters
from fgvc.models.vit import Attention, ViTConfig


def test_registered_name_creates_the_cifar_recipe():
    model = timm.create_model("fgvc_vit_cifar", num_classes=10)
    cfg = model.cfg
    assert (cfg.patch_size, cfg.dim, cfg.depth, cfg.heads, cfg.mlp_dim, cfg.img_size) == (4, 256, 12, 4, 1024, 32)
    assert (cfg.dropout, cfg.attn_dropout, cfg.init_std, cfg.qkv_bias) == (0.1, 0.1, 0.02, True)
    assert model.pos_embed.shape == (1, 1 + 64, 256)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert "fgvc_vit_cifar" in timm.list_models("fgvc_*")


def test_registered_with_its_pretrained_config_and_drop_path():
    from fgvc.config import load_config
    from fgvc.data.transforms import resolve_normalization

    cfg = timm.models.get_pretrained_cfg("fgvc_vit_tiny")
    assert cfg is not None and tuple(cfg.mean) == (0.5, 0.5, 0.5) and cfg.input_size == (3, 28, 28)
    norm = resolve_normalization(load_config(None, ["model.name=fgvc_vit_tiny", "model.pretrained=false"]).data.transforms,
                                 ModelConfig(name="fgvc_vit_tiny", pretrained=False))
    assert norm.mean == (0.5, 0.5, 0.5) and norm.source == "timm pretrained config of fgvc_vit_tiny"
    model, _ = create_model(ModelConfig(name="fgvc_vit_tiny", pretrained=False, drop_path_rate=0.2), 3)
    rates = [getattr(block.drop_path, "drop_prob", 0.0) for block in model.blocks]
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.2) and rates == sorted(rates)
    model.train()
    torch.manual_seed(0)
    x = torch.randn(4, 3, 28, 28)
    assert not torch.allclose(model(x), model(x))  # stochastic depth is active in training
    model.eval()
    assert torch.allclose(model(x), model(x))


def test_attention_probabilities_sum_to_one_and_paths_agree():
    torch.manual_seed(0)
    attention = Attention(ViTConfig(dim=64, heads=4, dropout=0.0, attn_dropout=0.0)).eval()
    x = torch.randn(3, 17, 64)
    fast = attention(x)
    explicit, probs = attention(x, return_attention=True)
    assert probs.shape == (3, 4, 17, 17)
    assert torch.allclose(probs.sum(-1), torch.ones(3, 4, 17), atol=1e-6)
    assert torch.allclose(fast, explicit, atol=1e-5)


def test_whole_model_paths_agree():
    model = timm.create_model("fgvc_vit_tiny", num_classes=5).eval()
    x = torch.randn(2, 3, 28, 28)
    logits, attentions = model.forward_with_attention(x)
    assert torch.allclose(model(x), logits, atol=1e-5)
    assert len(attentions) == 6 and attentions[0].shape == (2, 4, 1 + 49, 1 + 49)


def test_made_at_224_runs_at_448_with_interpolated_position_embeddings():
    small = timm.create_model("fgvc_vit_cifar", img_size=224, patch_size=16, depth=2, num_classes=3).eval()
    assert small(torch.randn(1, 3, 448, 448)).shape == (1, 3)  # on the fly at another input size
    large = timm.create_model("fgvc_vit_cifar", img_size=448, patch_size=16, depth=2, num_classes=3)
    from fgvc.models.weights import map_state_dict

    mapped, how = map_state_dict(small.state_dict(), large)
    assert how == "by name" and mapped["pos_embed"].shape == (1, 1 + 28 * 28, 256)
    # bicubic as timm does it (antialiased kernel), computed here without timm
    independent = torch.nn.functional.interpolate(
        small.pos_embed[:, 1:].reshape(1, 14, 14, 256).permute(0, 3, 1, 2), size=(28, 28), mode="bicubic",
        align_corners=False, antialias=True).permute(0, 2, 3, 1).reshape(1, 28 * 28, 256)
    assert torch.allclose(mapped["pos_embed"][:, 1:], independent, atol=1e-5)
    assert torch.equal(mapped["pos_embed"][:, :1], small.pos_embed[:, :1])  # class token kept
    assert torch.allclose(mapped["pos_embed"], resample_abs_pos_embed(small.pos_embed, [28, 28], num_prefix_tokens=1))


def test_strategies_and_factory_on_our_vit():
    model, _ = create_model(ModelConfig(name="fgvc_vit_tiny", pretrained=False, drop_rate=0.2), 7)
    assert model.head.out_features == 7 and model.blocks[0].mlp.drop.p == 0.2
    attention = apply_strategy(model, StrategyConfig(name="attention"))
    per_block = (128 * 384 + 384) + (128 * 128 + 128)
    assert count_parameters(attention)[1] == 6 * per_block + 128 * 7 + 7

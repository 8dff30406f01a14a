"""TransFG: part selection by the product of attention maps, the last block on [CLS] + one token per
head, the contrastive loss, on hand-built numbers and tiny ViTs."""

import math

import pytest
import timm
import torch
import torch.nn.functional as F

from fgvc.config import load_config
from fgvc.errors import ConfigError
from fgvc.models.methods.base import build_method
from fgvc.models.methods.transfg import (
    TransFG,
    contrastive_loss,
    embed,
    run_block,
    select_parts,
    take_tokens,
)


def tiny_vit(**kwargs) -> TransFG:
    torch.manual_seed(0)
    backbone = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, depth=3, **kwargs)
    return TransFG(backbone, num_classes=4, contrastive_weight=0.5, margin=0.4).eval()


def test_a_head_picks_the_argmax_of_the_product_not_of_one_layer():
    # tokens: class, p1, p2, p3. Alone, the last layer's class row picks p1 and the first layer's
    # picks p2; through A2 @ A1 the class token reaches p3 (0.6 x 0.25 + 0.4 x 1 = 0.55).
    first = torch.tensor([[0, 0, 1, 0], [.25, .25, .25, .25], [0, 0, 0, 1], [0, 0, 0, 1.]])
    last = torch.tensor([[0, .6, .4, 0], [.25, .25, .25, .25], [.1, .7, .1, .1], [.25, .25, .25, .25]])
    stack = [first.view(1, 1, 4, 4), last.view(1, 1, 4, 4)]
    assert select_parts(stack, prefix=1).tolist() == [[3]]
    assert select_parts(stack[::-1], prefix=1).tolist() == [[1]]  # the later layer goes on the left


@pytest.mark.parametrize("prefix", [1, 3])
def test_selected_tokens_are_the_per_head_argmax_of_the_product(prefix):
    torch.manual_seed(1)
    stack = [torch.randn(2, 4, 9, 9).mul(3).softmax(-1) for _ in range(4)]
    product = stack[3] @ stack[2] @ stack[1] @ stack[0]
    expected = product[:, :, 0, prefix:].argmax(-1) + prefix  # prefix tokens (class, registers) never chosen
    assert torch.equal(select_parts(stack, prefix), expected)


@pytest.mark.parametrize("name", ["timm", "fgvc"])
def test_the_explicit_block_is_the_block(name):
    torch.manual_seed(2)
    backbone = (timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, depth=2) if name == "timm"
                else timm.create_model("fgvc_vit_tiny", depth=2)).eval()
    block, x = backbone.blocks[0], torch.randn(2, 7, backbone.num_features)
    out, probs = run_block(block, x)
    assert torch.allclose(out, block(x), atol=1e-5)
    assert probs.shape == (2, 3 if name == "timm" else 4, 7, 7) and torch.allclose(probs.sum(-1), torch.ones(1))
    keep = torch.tensor([[0, 5, 5], [0, 2, 6]])
    assert torch.allclose(run_block(block, x, keep)[0], block(take_tokens(x, keep)), atol=1e-5)


@pytest.mark.parametrize("registers", [0, 2])
def test_the_last_block_reads_the_class_token_and_one_selected_token_per_head(registers):
    model, images = tiny_vit(reg_tokens=registers), torch.randn(2, 3, 32, 32)
    seen = {}
    last = model.backbone.blocks[-1]
    hooks = [last.attn.qkv.register_forward_hook(lambda _m, inputs, _o: seen.update(qkv=inputs[0])),
             model.backbone.blocks[-2].register_forward_hook(lambda _m, _i, out: seen.update(hidden=out))]
    encoded = model.encode(images)
    for hook in hooks:
        hook.remove()
    heads, prefix = last.attn.num_heads, 1 + registers
    assert seen["qkv"].shape == (2, 1 + heads, model.backbone.num_features)
    # the hidden states after block L-1 (the backbone's own forward) at the class token and the parts
    # chosen from the product of blocks 1..L-1's attention
    hidden = model.backbone.blocks[:-1](embed(model.backbone, images))
    assert torch.equal(encoded.parts, select_parts(encoded.attentions, prefix))
    keep = torch.cat([torch.zeros(2, 1, dtype=torch.long), encoded.parts], 1)
    assert (encoded.parts >= prefix).all()
    assert torch.allclose(seen["qkv"], last.norm1(take_tokens(hidden, keep)), atol=1e-5)
    assert torch.allclose(encoded.class_token, model.backbone.norm(last(take_tokens(hidden, keep)))[:, 0], atol=1e-5)
    assert encoded.last_attention.shape == (2, heads, 1 + heads, 1 + heads)


def test_contrastive_loss_on_known_vectors():
    # unit vectors a=(1,0), b=(0,1), c=(1,1)/sqrt2, d=(-1,0); classes {a, b}, {c, d}; margin 0.4
    features = torch.tensor([[1.0, 0.0], [0.0, 3.0], [2.0, 2.0], [-0.5, 0.0]])
    labels = torch.tensor([0, 0, 1, 1])
    r = 1 / math.sqrt(2)
    positive = 2 * (1 - 0) + 2 * (1 - (-r))  # (a,b), (c,d) both ways; an image with itself costs 0
    negative = 4 * (r - 0.4) + 2 * 0 + 2 * 0  # (a,c), (b,c) both ways; (a,d) at -1, (b,d) at 0 cost nothing
    assert contrastive_loss(features, labels, 0.4).item() == pytest.approx((positive + negative) / 16, abs=1e-6)
    assert contrastive_loss(features, labels, 0.9).item() == pytest.approx(positive / 16, abs=1e-6)


def test_training_loss_is_the_criterion_plus_the_weighted_contrastive_loss():
    model, images, targets = tiny_vit(), torch.randn(4, 3, 32, 32), torch.tensor([0, 0, 1, 2])
    loss, logits = model.training_loss(images, targets, F.cross_entropy)
    token = model.encode(images).class_token
    assert torch.allclose(logits, model(images), atol=1e-6)
    expected = F.cross_entropy(logits, targets) + 0.5 * contrastive_loss(token, targets, 0.4)
    assert loss.item() == pytest.approx(expected.item(), abs=1e-5)


def test_the_attention_grid_holds_the_last_block_at_the_tokens_it_read():
    model = tiny_vit()
    images = torch.randn(2, 3, 32, 32)
    logits, maps = model.forward_with_attention(images)
    encoded = model.encode(images)
    assert torch.allclose(logits, model(images)) and len(maps) == len(model.backbone.blocks)
    grid = maps[-1]  # (B, heads, T, T) with T = 1 + 4 patches
    assert grid.shape == (2, 3, 5, 5)
    for b in range(2):
        for h in range(3):
            expected = torch.zeros(5)
            expected[0] += encoded.last_attention[b, h, 0, 0]
            for j, part in enumerate(encoded.parts[b]):
                expected[part] += encoded.last_attention[b, h, 0, 1 + j]  # two heads may pick one token
            assert torch.allclose(grid[b, h, 0], expected, atol=1e-6)
    assert torch.allclose(grid[:, :, 0].sum(-1), torch.ones(1), atol=1e-5)


def test_a_cnn_backbone_is_refused_in_one_line():
    cfg = load_config(None, ["method.name=transfg", "model.name=resnet10t", "model.pretrained=false"])
    with pytest.raises(ConfigError, match="transfg needs a ViT") as caught:
        build_method(cfg, timm.create_model("resnet10t", pretrained=False), 3)
    assert "\n" not in str(caught.value)


def test_grad_cam_reads_the_last_block_on_the_whole_grid():
    from fgvc.explain.cam import class_activation_maps

    maps = class_activation_maps(tiny_vit(), torch.randn(2, 3, 32, 32), "gradcam")
    assert maps.shape == (2, 32, 32) and maps.max() > 0

"""Second-order pooling: bilinear, covariance and its Newton-Schulz square root, on known matrices."""

import pytest
import torch

from fgvc.config import load_config
from fgvc.errors import ConfigError
from fgvc.models import second_order
from fgvc.models.pooling import fixed_projection


def test_covariance_of_a_known_map():
    # two channels over four positions: x = [1, 2, 3, 4], y = 2x -> var(x) = 1.25, cov = 2.5, var(y) = 5
    x = torch.tensor([1.0, 2.0, 3.0, 4.0])
    feature_map = torch.stack([x, 2 * x]).reshape(1, 2, 2, 2)
    assert torch.allclose(second_order.covariance(feature_map), torch.tensor([[[1.25, 2.5], [2.5, 5.0]]]))


def test_newton_schulz_square_root_matches_the_eigen_decomposition():
    torch.manual_seed(0)
    a = torch.randn(3, 6, 40, dtype=torch.float64)
    spd = a @ a.transpose(1, 2) / 40 + 0.5 * torch.eye(6, dtype=torch.float64)
    values, vectors = torch.linalg.eigh(spd)
    exact = vectors @ torch.diag_embed(values.sqrt()) @ vectors.transpose(1, 2)
    approx = second_order.newton_schulz_sqrt(spd, iterations=12)
    assert torch.allclose(approx @ approx, spd, atol=1e-6)
    assert torch.allclose(approx, exact, atol=1e-6)
    # five iterations (the paper's default) are already close; one is not
    assert (second_order.newton_schulz_sqrt(spd, 5) - exact).abs().max() < 0.05
    assert (second_order.newton_schulz_sqrt(spd, 1) - exact).abs().max() > (second_order.newton_schulz_sqrt(spd, 5) - exact).abs().max()


def test_isqrt_cov_vectorises_the_upper_triangle():
    torch.manual_seed(1)
    feature_map = torch.randn(2, 5, 4, 4)
    pooled = second_order.isqrt_cov(feature_map, iterations=5)
    assert pooled.shape == (2, 5 * 6 // 2)
    root = second_order.newton_schulz_sqrt(second_order.covariance(feature_map), 5)
    rows, cols = torch.triu_indices(5, 5)
    assert torch.allclose(pooled, root[:, rows, cols])
    assert torch.allclose(pooled[:, 0], root[:, 0, 0]) and torch.allclose(pooled[:, -1], root[:, 4, 4])


def test_bilinear_is_the_signed_root_of_the_mean_outer_product_unit_length():
    feature_map = torch.tensor([[1.0, -1.0], [2.0, 0.0]]).reshape(1, 2, 1, 2)  # channel a = [1, -1], b = [2, 0]
    pooled = second_order.bilinear(feature_map)
    outer = torch.tensor([1.0, 1.0, 1.0, 2.0])  # aa = (1+1)/2, ab = (2+0)/2, ba, bb = (4+0)/2
    expected = outer.sqrt() / outer.sqrt().norm()
    assert torch.allclose(pooled[0], expected, atol=1e-6)
    assert torch.allclose(pooled.norm(dim=1), torch.ones(1))


def test_fixed_projection_is_orthonormal_and_the_same_every_time():
    p = fixed_projection(40, 8)
    assert p.shape == (8, 40)
    assert torch.allclose(p @ p.T, torch.eye(8), atol=1e-5)
    assert torch.equal(p, fixed_projection(40, 8))
    assert fixed_projection(6, 8).shape == (6, 6)  # never more directions than channels


def test_probe_second_order_features_and_the_size_guard(tiny_overrides):
    from fgvc.models.assembly import build_network

    probe = ["train.engine=probe", "probe.pooling=[cov]"]
    cfg = load_config(None, tiny_overrides + probe + ["probe.projection=16"])
    model, _ = build_network(cfg, 3, pretrained=False)
    assert model.features(torch.randn(2, 3, 24, 24)).shape == (2, 16 * 17 // 2)
    wide = load_config(None, tiny_overrides + ["train.engine=probe", "probe.pooling=[bilinear]",
                                               "model.name=resnet18"])
    with pytest.raises(ConfigError, match=r"gives 262,144 features per image; set probe.projection"):
        build_network(wide, 3, pretrained=False)


def test_methods_are_refused_where_they_cannot_run(tiny_overrides):
    with pytest.raises(ConfigError, match="method.name: isqrt_cov trains with train.engine: lightning; .*probe.pooling: \\[cov\\]"):
        load_config(None, tiny_overrides + ["method.name=isqrt_cov", "train.engine=probe"])
    with pytest.raises(ConfigError, match="method.high_order.dim: settings of method.name: bilinear / isqrt_cov"):
        load_config(None, tiny_overrides + ["method.high_order.dim=8"])
    with pytest.raises(ConfigError, match="loss.confusion pairs images of different classes, which data.mixup blends"):
        load_config(None, tiny_overrides + ["loss.confusion=1", "data.mixup.mixup_alpha=0.2"])


def test_a_method_trains_its_own_modules_under_a_partial_strategy(tiny_overrides):
    from fgvc.models.assembly import build_network

    cfg = load_config(None, tiny_overrides + ["method.name=isqrt_cov", "method.high_order.dim=8",
                                              "strategy.name=partial", "strategy.unfreeze_last=1"])
    model, _ = build_network(cfg, 3, pretrained=False)
    trainable = {n.split(".")[0] + ("." + n.split(".")[1] if n.startswith("backbone") else "")
                 for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"classifier", "projection", "backbone.layer4"}


def test_probe_second_order_features_agree_in_onnx_runtime_and_torch(tiny_overrides):
    """The probe's backbone pass runs in ONNX Runtime on the CPU: projection, covariance and Newton-Schulz
    export, and give torch's features to float rounding."""
    from fgvc.data import load_data
    from fgvc.data.transforms import transforms_for
    from fgvc.models.assembly import build_network
    from fgvc.train.feature_cache import extract_features

    cfg = load_config(None, tiny_overrides + ["train.engine=probe", "probe.pooling=[avg, cov]", "probe.projection=12"])
    torch.manual_seed(0)
    model, _ = build_network(cfg, 3, pretrained=False)
    images = load_data(cfg.data).test
    transform = transforms_for(cfg).eval
    torch_features = extract_features(model, images, transform, 8, engine="torch")
    onnx_features = extract_features(model, images, transform, 8, engine="onnx")
    assert torch_features.shape == (len(images), 12 + 12 * 13 // 2)
    assert torch.allclose(onnx_features, torch_features, atol=1e-4), float((onnx_features - torch_features).abs().max())


@pytest.mark.parametrize("method", ["bilinear", "isqrt_cov", "wsdan", "dcl", "nts"])
def test_a_cnn_method_on_a_vit_is_one_config_error_naming_it(method, tiny_overrides):
    import timm

    from fgvc.config import MethodConfig
    from fgvc.registry import METHODS

    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, num_classes=3)
    settings = {"bilinear": {"high_order": {"dim": 8}}, "isqrt_cov": {"high_order": {"dim": 8}},
                "wsdan": {"wsdan": {"attentions": 4}}, "nts": {"nts": {"part_size": 16}}}.get(method, {})
    try:
        model = METHODS.get(method)(vit, 3, MethodConfig(name=method, **settings))
    except ConfigError as exc:  # refused while building (a method that probes the map in __init__)
        message = str(exc)
    else:
        with pytest.raises(ConfigError) as caught:
            model(torch.randn(2, 3, 32, 32))
        message = str(caught.value)
    assert message.startswith(f"method.name {method}") and "choose a CNN model.name" in message
    assert "\n" not in message

"""Tip-Adapter (-F) and the probe on CLIP features, on a tiny randomly initialised open_clip model
(registered from a config dict, weights in a local file): nothing is downloaded, the real code path runs."""

import json
import math

import pytest
from builders import make_tiny_open_clip
import torch
import torch.nn.functional as F

from fgvc.config import load_config
from fgvc.errors import ConfigError
from fgvc.evaluate.runs import load_trained
from fgvc.models.clip_towers import load_clip, zero_shot_classifier
from fgvc.models.tip_adapter import TipAdapter, build_cache, cache_logits, search_alpha_beta
from fgvc.runfolder import RunFolder

open_clip = pytest.importorskip("open_clip")  # the vlm extra

TINY = "fgvc-tiny-clip-tip"
TOWER_PX = 32


@pytest.fixture(scope="module")
def tiny_clip_file(tmp_path_factory):
    """The tiny CLIP of tests/builders.py, registered with open_clip as TINY, its weights in a file."""
    return make_tiny_open_clip(tmp_path_factory.mktemp("tiny_clip"), TINY)


@pytest.fixture
def clip_tower(tiny_overrides, tiny_clip_file, tmp_path):
    """The tiny tower as the zero_shot section names it (its own 32 px preprocessing), a fresh feature cache."""
    return tiny_overrides + ["data.transforms.resize=256", "data.transforms.crop=224", f"zero_shot.model={TINY}",
                             "zero_shot.pretrained=null", f"zero_shot.pretrained_file={tiny_clip_file}",
                             f"data.cache_dir={tmp_path / 'cache'}"]


@pytest.fixture
def tip_overrides(clip_tower):
    return clip_tower + ["train.engine=tip_adapter", "zero_shot.templates=photo", "tip_adapter.views=2",
                         "tip_adapter.alpha_steps=4", "tip_adapter.beta_steps=5"]


def test_cache_logits_are_the_papers_formula_by_hand():
    keys = F.normalize(torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]]), dim=-1)
    values = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # images 0, 1 of class 0; image 2 of class 1
    f = torch.tensor([[0.8, 0.6]])
    beta, alpha = 2.0, 0.5
    cosines = [0.8, 0.6 * 0.8 + 0.8 * 0.6, 0.6]  # f . each key
    votes = [math.exp(-beta * (1 - cosines[0])) + math.exp(-beta * (1 - cosines[1])),
             math.exp(-beta * (1 - cosines[2]))]
    assert cache_logits(f, keys, values, beta)[0].tolist() == pytest.approx(votes, rel=1e-6)

    head = torch.nn.Linear(2, 2)
    model = TipAdapter(torch.nn.Identity(), head, keys, values, alpha, beta)
    with torch.no_grad():
        expected = head(f)[0] + alpha * torch.tensor(votes)
        assert torch.allclose(model(torch.tensor([[4.0, 3.0]]))[0], expected, atol=1e-6)  # normalised first

    cache_keys, one_hot = build_cache(torch.stack([keys * 2, keys * 4]), torch.tensor([0, 0, 1]), 2)
    assert torch.allclose(cache_keys, keys) and torch.equal(one_hot, values)  # views averaged, normalised


def test_the_search_returns_the_best_grid_point():
    clip = torch.tensor([[1.0, 0.0], [1.0, 0.0]])  # zero-shot says class 0 for both
    affinity = torch.tensor([[0.0, 1.0], [0.0, 1.0]])  # both close to training image 1 (class 1)
    values = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    alpha, beta, top1 = search_alpha_beta(clip, affinity, values, torch.tensor([1, 1]), [0.5, 2.0], [1.0, 3.0])
    # beta 1: votes (exp(-1), 1); alpha 2 overturns the zero-shot 1 (0.5 does not); beta 3 ties, the first is kept
    assert (alpha, beta, top1) == (2.0, 1.0, 1.0)


def test_alpha_zero_is_zero_shot_and_the_trainable_keys_start_as_the_cache(clip_tower):
    cfg = load_config(None, clip_tower + ["train.engine=tip_adapter", "zero_shot.templates=photo"])
    clip = load_clip(cfg.zero_shot)
    zero_shot = zero_shot_classifier(clip, ["red", "green", "blue"], cfg.zero_shot)
    torch.manual_seed(1)
    keys, values = build_cache(torch.randn(6, 32), torch.tensor([0, 0, 1, 1, 2, 2]), 3)
    model = TipAdapter(zero_shot.visual, zero_shot.head, keys, values, alpha=0.0, beta=5.0).eval()
    assert torch.equal(model.keys.weight, keys)
    images = torch.rand(4, 3, TOWER_PX, TOWER_PX)
    with torch.no_grad():
        assert torch.allclose(model(images), zero_shot(images), atol=1e-6)
        model.alpha.fill_(1.0)
        assert not torch.allclose(model(images), zero_shot(images), atol=1e-3)


def test_tip_adapter_f_run_loads_back_and_exports_with_torchs_logits(tip_overrides, tmp_path):
    pytest.importorskip("onnxruntime")
    from fgvc.api import predict
    from fgvc.data import load_data
    from fgvc.export.run_export import export_run
    from fgvc.train.run import train

    overrides = tip_overrides + ["data.limit_per_class=2", "tip_adapter.finetune_epochs=2"]
    result = train(load_config(None, overrides), progress=False)
    folder = RunFolder(result.run_dir)
    metrics = json.loads(folder.metrics_file.read_text())
    tip = metrics["tip_adapter"]
    assert tip["cache_images"] == 6 and tip["finetune_best_epoch"] in (0, 1) and metrics["parameters"]["trainable"] == 6 * 32
    assert min(abs(tip["alpha"] - (0.1 + i * 2.9 / 4)) for i in range(4)) < 1e-6  # a grid point, chosen on val
    assert metrics["limit_per_class"] == {"per_class": 2, "seed": 42, "train_images": 6}
    assert len(folder.train_images_file.read_text().splitlines()) == 6
    assert len(folder.history_file.read_text().splitlines()) == 1 + 2  # header + one row per Tip-Adapter-F epoch
    assert folder.report_file.is_file() and len(folder.predictions("test")) == 12
    assert "library_name: pytorch" in (folder.path / "README.md").read_text()

    run = load_trained(folder.path)
    assert isinstance(run.model, TipAdapter) and float(run.model.alpha) == pytest.approx(tip["alpha"])
    probs = predict(run, load_data(run.cfg.data).test)
    written = torch.tensor([row.probs for row in folder.predictions("test")])
    assert torch.allclose(probs, written, atol=1e-5)

    exported = export_run(folder.path, "onnx", out=tmp_path / "export", log=lambda _: None)
    assert exported["metadata"]["input_size"] == [3, TOWER_PX, TOWER_PX]
    assert exported["max_abs_logit_difference"] < 1e-3


def test_probe_on_clip_features_trains_and_caches_by_the_clip_weights(clip_tower):
    from fgvc.train.run import train

    overrides = clip_tower + ["train.engine=probe", "probe.features=clip", "train.epochs=3"]
    first = train(load_config(None, overrides + ["output.name=first"]), progress=False)
    folder = RunFolder(first.run_dir)
    metrics = json.loads(folder.metrics_file.read_text())
    assert folder.probe_head_file.is_file() and {"top1", "f1_macro"} <= set(metrics["test"])
    assert metrics["feature_cache"] == {"hits": 0, "misses": 3} and metrics["weights"].startswith("open_clip")
    assert metrics["parameters"]["trainable"] == 32 * 3 + 3
    assert f"`{TINY}`" in (folder.path / "README.md").read_text()

    run = load_trained(folder.path)  # the tower rebuilt with its preprocessing, the head on it
    assert run.cfg.data.transforms.crop == TOWER_PX
    again = torch.tensor([row.probs for row in folder.predictions("test")])
    from fgvc.api import predict
    from fgvc.data import load_data

    assert torch.allclose(predict(run, load_data(run.cfg.data).test), again, atol=1e-5)
    second = train(load_config(None, overrides + ["output.name=second", "seed=3"]), progress=False)
    assert second.metrics["feature_cache"] == {"hits": 3, "misses": 0}  # the same tower: its cached features

    from fgvc.train.engines.probe import ProbeFeatures

    cfg = load_config(None, overrides)
    cached = ProbeFeatures(cfg, load_data(cfg.data)).get("test")[0]
    assert cached.shape == (12, 32) and torch.allclose(cached.norm(dim=-1), torch.ones(12), atol=1e-5)  # as CLIP's


def test_config_rules(clip_tower, tip_overrides, tiny_overrides):
    from fgvc.train.run import train

    with pytest.raises(ConfigError, match=r"zero_shot.model.*only for probe.features: clip"):
        load_config(None, clip_tower + ["train.engine=probe"])
    with pytest.raises(ConfigError, match=r"zero_shot.templates: the probe on CLIP features reads the tower alone"):
        load_config(None, clip_tower + ["train.engine=probe", "probe.features=clip", "zero_shot.templates=photo"])
    with pytest.raises(ConfigError, match=r"tip_adapter.views: settings of train.engine: tip_adapter"):
        load_config(None, tiny_overrides + ["tip_adapter.views=2"])
    cfg = load_config(None, tip_overrides + ["data.val_fraction=0"])
    with pytest.raises(ConfigError, match=r"tip_adapter.search chooses alpha and beta on the val split"):
        train(cfg, progress=False)
    assert not cfg.run_dir.exists()

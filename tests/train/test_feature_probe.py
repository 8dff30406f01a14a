"""The cached-feature linear probe: cache hit / miss / invalidation, heads, and a normal run folder."""

import csv
import json
import os

import pytest
import torch
from typer.testing import CliRunner

from fgvc.cli import app
from fgvc.config import load_config
from fgvc.evaluate.runs import evaluate_split, load_trained
from fgvc.train.run import train

runner = CliRunner()


@pytest.fixture
def probe_overrides(tiny_overrides, tmp_path):
    """A fixed backbone (weights from a file), as with any pretrained model: features do not depend on the seed."""
    import timm

    torch.manual_seed(0)
    torch.save(timm.create_model("resnet10t", num_classes=3).state_dict(), tmp_path / "backbone.pth")
    return tiny_overrides + ["train.engine=probe", f"data.cache_dir={tmp_path / 'cache'}", "train.epochs=30",
                             "optim.lr=0.05", "optim.weight_decay=0", "model.pretrained=true",
                             f"model.pretrained_file={tmp_path / 'backbone.pth'}"]


def test_probe_run_folder_and_cache_hits(probe_overrides, tmp_path):
    first = train(load_config(None, probe_overrides + ["output.name=a"]), progress=False)
    assert first.metrics["feature_cache"] == {"hits": 0, "misses": 3}  # train, val, test
    assert first.test["top1"] > 0.9  # colour is linearly separable in random-CNN features
    second = train(load_config(None, probe_overrides + ["output.name=b", "seed=7"]), progress=False)
    assert second.metrics["feature_cache"] == {"hits": 3, "misses": 0}  # another seed reuses the cache
    # the head was put back on the backbone: evaluating the checkpoint reproduces the metrics
    again = evaluate_split(load_trained(first.run_dir), "test", write=False)
    assert again["top1"] == pytest.approx(first.test["top1"])
    assert again["ece"] == pytest.approx(first.test["ece"], abs=1e-5)
    assert first.metrics["parameters"]["trainable"] == 3 * 512 + 3  # resnet10t features -> 3 classes


def test_cache_invalidation(probe_overrides, tmp_path, colour_data):
    cfg = load_config(None, probe_overrides + ["train.epochs=1"])
    assert train(cfg, progress=False).metrics["feature_cache"]["misses"] == 3
    other_transform = load_config(None, probe_overrides + ["train.epochs=1", "data.transforms.resize=28"])
    assert train(other_transform, progress=False).metrics["feature_cache"] == {"hits": 0, "misses": 3}
    touched = next((colour_data / "test" / "red").iterdir())
    stat = touched.stat()
    os.utime(touched, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10_000_000))
    assert train(cfg, progress=False).metrics["feature_cache"] == {"hits": 2, "misses": 1}  # only test changed
    views = load_config(None, probe_overrides + ["train.epochs=1", "probe.views=2"])
    assert train(views, progress=False).metrics["feature_cache"] == {"hits": 2, "misses": 1}  # new train views
    # one bank of plain features per transform (the touched image was added to its bank), one file of views
    assert len(list((tmp_path / "cache" / "features").glob("*.pt"))) == 1 + 1 + 1


def test_plain_features_are_reused_across_splits(probe_overrides):
    """Another val split (or test split, or fold) draws on the same per-image features: no backbone pass."""
    first = train(load_config(None, probe_overrides + ["train.epochs=1", "output.name=a"]), progress=False)
    moved = train(load_config(None, probe_overrides + ["train.epochs=1", "data.split_seed=5", "output.name=b"]),
                  progress=False)
    assert first.metrics["feature_cache"]["misses"] == 3
    assert moved.metrics["feature_cache"] == {"hits": 3, "misses": 0}
    again = evaluate_split(load_trained(moved.run_dir), "val", write=False)  # the features match a fresh pass
    assert again["top1"] == pytest.approx(moved.metrics["val"]["top1"])
    assert again["ece"] == pytest.approx(moved.metrics["val"]["ece"], abs=1e-5)


def test_mlp_and_logistic_regression_heads(probe_overrides):
    mlp = train(load_config(None, probe_overrides + ["probe.head=mlp", "probe.hidden=32", "optim.lr=0.01",
                                                     "output.name=mlp"]), progress=False)
    assert mlp.test["top1"] > 0.9
    assert isinstance(load_trained(mlp.run_dir).model.fc, torch.nn.Sequential)
    logreg = train(load_config(None, probe_overrides + ["probe.head=logreg", "output.name=lr"]), progress=False)
    assert logreg.test["top1"] > 0.9
    assert evaluate_split(load_trained(logreg.run_dir), "test", write=False)["top1"] == pytest.approx(logreg.test["top1"])


def test_random_backbone_features_depend_on_the_seed(probe_overrides):
    random_backbone = [o for o in probe_overrides if not o.startswith("model.pretrained")] + [
        "train.epochs=1", "model.pretrained=false"]
    assert train(load_config(None, random_backbone + ["seed=1"]), progress=False).metrics["feature_cache"]["misses"] == 3
    assert train(load_config(None, random_backbone + ["seed=2"]), progress=False).metrics["feature_cache"]["misses"] == 3
    assert train(load_config(None, random_backbone + ["seed=1"]), progress=False).metrics["feature_cache"]["hits"] == 3


def test_cli_train_features(probe_overrides, tmp_path):
    (tmp_path / "exp.yaml").write_text("seed: 1\n")
    args = [a for s in probe_overrides for a in ("--set", s)]
    result = runner.invoke(app, ["train", str(tmp_path / "exp.yaml"), *args])
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "runs" / "run"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["seed"] == 1 and metrics["epochs"] == 30  # the YAML's seed under the --set overrides
    assert metrics["feature_cache"] == {"hits": 0, "misses": 3}
    assert metrics["test"]["n"] == 12 and metrics["test"]["top1"] > 0.9
    assert [int(row["epoch"]) for row in csv.DictReader((run_dir / "history.csv").open())] == list(range(30))
    assert (run_dir / "checkpoints" / "probe_head.pt").is_file()
    assert list((tmp_path / "cache" / "features").glob("*.pt"))
    # the head on the backbone, loaded back from the folder, gives the metrics the command printed
    assert evaluate_split(load_trained(run_dir), "test", write=False)["top1"] == pytest.approx(metrics["test"]["top1"])
    printed = result.output.split("test metrics")[1]
    assert f"{metrics['test']['top1']:.4f}" in printed and f"{metrics['test']['ece']:.4f}" in printed


def test_probe_honours_optim_and_schedule(probe_overrides):
    from fgvc.errors import ConfigError

    adamw = train(load_config(None, probe_overrides + ["output.name=adamw", "train.epochs=3", "schedule.name=cosine"]),
                  progress=False)
    sgd = train(load_config(None, probe_overrides + ["output.name=sgd", "train.epochs=3", "optim.name=sgd"]),
                progress=False)
    assert sgd.metrics["val"]["ece"] != adamw.metrics["val"]["ece"]
    constant = train(load_config(None, probe_overrides + ["output.name=none", "train.epochs=3", "schedule.name=none"]),
                     progress=False)
    lrs = [float(r["lr"]) for r in csv.DictReader((constant.run_dir / "history.csv").open())]
    assert lrs == pytest.approx([0.05] * 3)
    cosine = [float(r["lr"]) for r in csv.DictReader((adamw.run_dir / "history.csv").open())]
    assert cosine[0] > cosine[1] > cosine[2] == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ConfigError, match="schedule.name 'step' is not supported by train.engine: probe"):
        load_config(None, probe_overrides + ["output.name=step", "schedule.name=step"])  # refused with the config


def test_logistic_regression_c_chosen_on_val(probe_overrides):
    from fgvc.errors import ConfigError
    from fgvc.train.probe_head import PROBE_C_GRID

    auto = train(load_config(None, probe_overrides + ["probe.head=logreg", "probe.c=auto",
                                                      "output.name=auto"]), progress=False)
    rows = list(csv.DictReader((auto.run_dir / "history.csv").open()))
    assert [float(r["probe_c"]) for r in rows] == list(PROBE_C_GRID)
    best = min(rows, key=lambda r: float(r["val/loss"]))
    assert auto.metrics["probe_c"] == float(best["probe_c"]) and best["chosen"] == "1"
    fixed = train(load_config(None, probe_overrides + ["probe.head=logreg",
                                                       f"probe.c={auto.metrics['probe_c']}",
                                                       "output.name=fixed"]), progress=False)
    assert fixed.metrics["val"]["ece"] == pytest.approx(auto.metrics["val"]["ece"])  # the same model
    with pytest.raises(ConfigError, match="probe.c: auto chooses C on the val split"):
        train(load_config(None, probe_overrides + ["probe.head=logreg", "probe.c=auto",
                                                   "data.val_fraction=0", "output.name=noval"]), progress=False)
    with pytest.raises(Exception, match="probe.c: c must be positive or auto"):
        load_config(None, ["train.engine=probe", "probe.c=-1"])


def test_pooled_layers_probe_with_standardised_logreg(probe_overrides):
    """The last two stages of resnet10t (256 + 512 channels), each pooled by mean and max: a 1,536-wide
    feature; the standardising is folded into the saved Linear, so the rebuilt model gives the same
    probabilities as the probe did, and its features are cached apart from the plain ones."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from fgvc.runfolder import RunFolder
    from fgvc.train.engines.probe import ProbeFeatures
    from fgvc.data import load_data

    pooled = ["probe.layers=2", "probe.pooling=[avg, max]", "probe.head=logreg",
              "probe.standardize=true", "probe.c=0.5"]
    run = train(load_config(None, probe_overrides + pooled + ["output.name=pooled"]), progress=False)
    assert run.metrics["feature_cache"] == {"hits": 0, "misses": 3}
    trained = load_trained(run.run_dir)
    assert trained.model.classifier.in_features == 2 * (256 + 512)
    again = evaluate_split(trained, "test", write=False)
    assert again["top1"] == pytest.approx(run.test["top1"]) and again["ece"] == pytest.approx(run.test["ece"], abs=1e-5)

    cfg = load_config(None, probe_overrides + pooled)
    splits = load_data(cfg.data)
    features = ProbeFeatures(cfg, splits)
    x, y = features.get("train")[0].double().numpy(), np.asarray(splits.train.labels)
    x_test = features.get("test")[0].double().numpy()
    mean, scale = x.mean(0), x.std(0) + 1e-6
    reference = LogisticRegression(C=0.5, max_iter=2000, random_state=cfg.seed).fit((x - mean) / scale, y)
    expected = reference.predict_proba((x_test - mean) / scale)
    saved = np.array([r.probs for r in RunFolder(run.run_dir).predictions("test")])
    assert np.allclose(saved, expected, atol=1e-4)

    plain = train(load_config(None, probe_overrides + ["output.name=plain"]), progress=False)
    assert plain.metrics["feature_cache"]["misses"] == 3  # other features, another bank


def test_pooling_options_belong_to_the_probe_engine():
    from fgvc.errors import ConfigError

    with pytest.raises(ConfigError, match=r"probe.layers: settings of train.engine: probe, which this config does "
                                          r"not use \(train.engine: lightning\)"):
        load_config(None, ["strategy.name=partial", "probe.layers=2"])
    with pytest.raises(ConfigError, match="probe.standardize applies to probe.head: logreg only"):
        load_config(None, ["train.engine=probe", "probe.standardize=true"])
    with pytest.raises(ConfigError, match="probe.pooling: unknown pooling 'mean'"):
        load_config(None, ["train.engine=probe", "probe.pooling=[mean]"])


def test_backbone_pass_engines_agree_and_auto_picks_onnx_for_many_images(colour_data, monkeypatch):
    """torch in NCHW, torch in channels_last and ONNX Runtime give the same features to float rounding;
    auto uses ONNX Runtime on the CPU for many images, and torch when the network does not export."""
    import fgvc.models.onnx_runtime as onnx_runtime
    from fgvc.data import load_data
    from fgvc.data.transforms import transforms_for
    from fgvc.errors import FgvcError
    from fgvc.models.assembly import build_network
    from fgvc.train import feature_cache
    from fgvc.train.feature_cache import extract_features

    cfg = load_config(None, ["model.name=resnet10t", "model.pretrained=false", "data.transforms.resize=32",
                             "data.transforms.crop=32", "data.name=image_folder", f"data.root={colour_data / 'train'}",
                             "data.val_fraction=0"])
    model, _ = build_network(cfg, 3)
    images = load_data(cfg.data).train
    transform = transforms_for(cfg).eval
    nchw = extract_features(model, images, transform, 16, engine="torch", channels_last=False)
    nhwc = extract_features(model, images, transform, 16, engine="torch", channels_last=True)
    ort = extract_features(model, images, transform, 16, engine="onnx")
    assert nchw.shape == (len(images), 512) and torch.allclose(nhwc, nchw, atol=1e-4)
    assert torch.allclose(ort, nchw, atol=1e-4) and not torch.equal(ort, nchw)  # really another engine
    assert next(model.parameters()).is_contiguous()  # the layout is put back (checkpoints need it)
    assert feature_cache._use_onnx("auto", torch.device("cpu"), 256)
    assert not feature_cache._use_onnx("auto", torch.device("cpu"), 255)

    def broken(*_, **__):
        raise FgvcError("ONNX export of resnet10t failed: unsupported")

    monkeypatch.setattr(onnx_runtime, "export_module_onnx", broken)
    monkeypatch.setattr(feature_cache, "ONNX_FROM_IMAGES", 1)
    model.conv1[0].weight.data *= 1.01  # new backbone weights: the cached session does not apply
    fallback = extract_features(model, images, transform, 16, engine="auto", channels_last=False)
    assert torch.equal(fallback, extract_features(model, images, transform, 16, engine="torch", channels_last=False))
    with pytest.raises(FgvcError, match="ONNX export of resnet10t failed"):
        extract_features(model, images, transform, 16, engine="onnx")

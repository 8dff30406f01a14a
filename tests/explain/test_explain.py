"""fgvc explain: overlays at the model's input size for a CNN and a ViT, and the report gallery."""

import csv

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import fgvc.models  # noqa: F401
from fgvc.cli import app
from fgvc.config import load_config
from fgvc.explain.attention import attention_rollout, last_layer_attention
from fgvc.evaluate.predict import predict_probs
from fgvc.evaluate.runs import images_in_folder, load_trained
from fgvc.explain.run_explain import explain_images, gallery, spread_over_classes
from fgvc.runfolder import Prediction
from fgvc.train.run import train

runner = CliRunner()


def one_epoch_at_32px(colour_data, out, model: str, name: str) -> list[str]:
    return [
        "data.name=image_folder", f"data.root={colour_data / 'train'}", f"data.test_root={colour_data / 'test'}",
        "data.val_fraction=0.25", "data.num_workers=0", "data.transforms.resize=32", "data.transforms.crop=32",
        f"model.name={model}", "model.pretrained=false", "train.epochs=1", "train.batch_size=8",
        f"output.dir={out}", f"output.name={name}"]


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory, colour_data):
    overrides = one_epoch_at_32px(colour_data, tmp_path_factory.mktemp("cnn"), "resnet10t", "cnn")
    return train(load_config(None, overrides), progress=False).run_dir, overrides


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "scorecam"])
def test_cam_overlays_for_a_cnn(cnn_run, colour_data, tmp_path, method):
    run_dir, _ = cnn_run
    results = explain_images(run_dir, [colour_data / "test" / "red"], method, tmp_path)
    assert len(results) == 4
    with Image.open(results[0].overlay) as overlay:
        assert overlay.size == (32, 32) and overlay.mode == "RGB"
    run = load_trained(run_dir)
    files = sorted((colour_data / "test" / "red").iterdir())
    probs = predict_probs(run.model, images_in_folder(colour_data / "test" / "red", run.class_names), run.eval_transform)
    assert [r.image for r in results] == [str(f) for f in files]
    assert [r.predicted for r in results] == [run.class_names[int(i)] for i in probs.argmax(-1)]
    assert [r.probability for r in results] == pytest.approx(probs.max(-1).values.tolist(), abs=1e-5)
    assert all(r.true == "red" for r in results)
    rows = list(csv.DictReader((tmp_path / "explanations.csv").open()))
    assert [row["true"] for row in rows] == ["red"] * 4
    assert [float(row["probability"]) for row in rows] == pytest.approx([r.probability for r in results], abs=1e-4)


def test_vit_cam_rollout_and_attention(cnn_run, colour_data, tmp_path):
    _, overrides = cnn_run
    vit = [o for o in overrides if not o.startswith(("model.name", "output.name"))] + [
        "model.name=vit_tiny_patch16_224", "model.img_size=32", "output.name=vit"]
    run_dir = train(load_config(None, vit), progress=False).run_dir
    for method in ("gradcam", "rollout", "attention"):
        results = explain_images(run_dir, [colour_data / "test" / "blue"], method, tmp_path / method)
        with Image.open(results[0].overlay) as overlay:
            assert overlay.size == (32, 32)
    cli = runner.invoke(app, ["explain", str(run_dir), str(colour_data / "test" / "green"), "--method", "rollout",
                              "--out", str(tmp_path / "cli")])
    assert cli.exit_code == 0, cli.output
    assert len(list((tmp_path / "cli").glob("*_rollout.png"))) == 4


def test_rollout_and_attention_maps_are_normalised_maps():
    import timm

    model = timm.create_model("fgvc_vit_tiny", num_classes=3).eval()
    x = torch.randn(2, 3, 28, 28)
    for maps in (attention_rollout(model, x), last_layer_attention(model, x)):
        assert maps.shape == (2, 28, 28)
        assert np.isclose(maps.max(), 1.0) and maps.min() >= 0
    timm_vit = timm.create_model("vit_tiny_patch16_224", img_size=32, num_classes=3).eval()
    for setting in (True, False):  # the explicit path is switched on for the pass, then the user's setting is back
        for block in timm_vit.blocks:
            block.attn.fused_attn = setting
        assert attention_rollout(timm_vit, torch.randn(1, 3, 32, 32)).shape == (1, 32, 32)
        assert [block.attn.fused_attn for block in timm_vit.blocks] == [setting] * len(timm_vit.blocks)


def test_gallery_lands_in_the_report(cnn_run):
    run_dir, _ = cnn_run
    path = gallery(run_dir)
    assert path.is_file()
    from fgvc.report.html import run_report

    assert "What the model looks at" in run_report(run_dir).read_text()


def test_gallery_picks_spread_over_classes():
    rows = [Prediction(f"{c}_{k}.png", c, str(c), c, str(c), 0.9, ()) for c in range(3) for k in range(5)]
    chosen = spread_over_classes(rows, 4)
    assert [r.target for r in chosen] == [0, 1, 2, 0]
    assert [r.image for r in chosen] == ["0_0.png", "1_0.png", "2_0.png", "0_1.png"]
    assert len(spread_over_classes(rows[:2], 4)) == 2


@pytest.fixture(scope="module")
def efficientnet_run(tmp_path_factory, colour_data):
    overrides = one_epoch_at_32px(colour_data, tmp_path_factory.mktemp("effnet"), "tf_efficientnet_lite0", "effnet")
    return train(load_config(None, overrides), progress=False).run_dir


def test_gallery_on_efficientnet_uses_gradcam_and_honours_method(efficientnet_run):
    """EfficientNet has `.blocks` too (convolutions): the method is chosen by architecture."""
    result = runner.invoke(app, ["explain", str(efficientnet_run), "--gallery"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((efficientnet_run / "explain" / "explanations.csv").open()))
    assert rows and all(r["overlay"].endswith("_gradcam.png") for r in rows)
    assert len({r["true"] for r in rows}) == 3  # right and wrong picks spread over the three classes
    result = runner.invoke(app, ["explain", str(efficientnet_run), "--gallery", "--method", "gradcam++"])
    assert result.exit_code == 0, result.output
    assert list((efficientnet_run / "explain").glob("*_gradcam++.png"))


def test_an_attention_method_on_a_cnn_is_a_clear_error_and_leaves_no_folder(efficientnet_run, colour_data, tmp_path):
    out = tmp_path / "overlays"
    result = runner.invoke(app, ["explain", str(efficientnet_run), str(colour_data / "test" / "red"),
                                 "--method", "rollout", "--out", str(out)])
    assert result.exit_code == 2
    assert "--method rollout needs a ViT; tf_efficientnet_lite0 is not one" in result.output
    assert not out.exists()


def test_gradcam_reaches_a_frozen_backbone(cnn_run, colour_data, tmp_path):
    """A linear probe freezes the layer Grad-CAM hooks; its maps must still come out (not a crash on a
    missing gradient) and differ between images."""
    _, overrides = cnn_run
    frozen = [o for o in overrides if not o.startswith("output.name")] + ["strategy.name=linear",
                                                                          "output.name=frozen"]
    run_dir = train(load_config(None, frozen), progress=False).run_dir
    results = explain_images(run_dir, [colour_data / "test" / "red", colour_data / "test" / "blue"], "gradcam", tmp_path)
    overlays = [np.asarray(Image.open(r.overlay), dtype=np.float32) for r in results]
    assert len(overlays) == 8 and np.abs(overlays[0] - overlays[-1]).mean() > 1.0

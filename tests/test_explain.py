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
from fgvc.explain.run_explain import explain_images, gallery
from fgvc.train.run import train

runner = CliRunner()


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory, colour_data):
    out = tmp_path_factory.mktemp("cnn")
    overrides = [
        "data.name=image_folder", f"data.root={colour_data / 'train'}", f"data.test_root={colour_data / 'test'}",
        "data.val_fraction=0.25", "data.num_workers=0", "data.transforms.resize=32", "data.transforms.crop=32",
        "model.name=resnet10t", "model.pretrained=false", "train.epochs=1", "train.batch_size=8",
        f"output.dir={out}", "output.name=cnn"]
    return train(load_config(None, overrides), progress=False).run_dir, overrides


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "scorecam"])
def test_cam_overlays_for_a_cnn(cnn_run, colour_data, tmp_path, method):
    run_dir, _ = cnn_run
    results = explain_images(run_dir, [colour_data / "test" / "red"], method, tmp_path)
    assert len(results) == 4
    with Image.open(results[0].overlay) as overlay:
        assert overlay.size == (32, 32) and overlay.mode == "RGB"
    assert results[0].true == "red" and results[0].predicted in ("blue", "green", "red")
    rows = list(csv.DictReader((tmp_path / "explanations.csv").open()))
    assert rows[0]["true"] == "red" and 0 <= float(rows[0]["probability"]) <= 1


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
    assert attention_rollout(timm_vit, torch.randn(1, 3, 32, 32)).shape == (1, 32, 32)
    assert timm_vit.blocks[0].attn.fused_attn in (True, False)  # restored after the pass


def test_gallery_lands_in_the_report(cnn_run):
    run_dir, _ = cnn_run
    path = gallery(run_dir)
    assert path.is_file()
    from fgvc.report.html import run_report

    assert "What the model looks at" in run_report(run_dir).read_text()

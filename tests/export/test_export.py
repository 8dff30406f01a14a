"""fgvc export: ONNX and TorchScript files whose logits equal fgvc's on real images, for a CNN, timm's
ViT, fgvc's own ViT and a LoRA run (merged); metadata stored with them; ONNX Runtime as a predict engine;
int8 quantisation with the test-metric change."""

import csv
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from fgvc.api import load_run, plain_model
from fgvc.cli import app
from fgvc.config import load_config
from fgvc.data import load_data
from fgvc.errors import FgvcError
from fgvc.export.engines import OnnxRuntimeModel
from fgvc.export.metadata import read_metadata
from fgvc.export.run_export import export_run
from fgvc.train.run import train

runner = CliRunner()
VIT = ["model.name=vit_tiny_patch16_224", "model.img_size=32", "data.transforms.resize=32", "data.transforms.crop=32"]
MODELS = {
    "cnn": [],
    "timm_vit": VIT,
    "fgvc_vit": ["model.name=fgvc_vit_tiny", "data.transforms.resize=28", "data.transforms.crop=28"],
    "lora": VIT + ["strategy.name=lora", "strategy.lora_rank=4", "optim.lr=0.01"],
}


def trained(tiny_overrides, tmp_path, name):
    cfg = load_config(None, tiny_overrides + ["train.epochs=1"] + MODELS[name] + [f"output.name={name}"])
    return train(cfg, progress=False).run_dir


def real_batch(run):
    images = load_data(run.cfg.data).test
    return torch.stack([run.eval_transform(images.load(i)) for i in range(len(images))])


@pytest.mark.parametrize("name", list(MODELS))
def test_exported_logits_equal_fgvcs_on_real_images(tiny_overrides, tmp_path, name):
    run_dir = trained(tiny_overrides, tmp_path, name)
    run = load_run(run_dir)
    batch = real_batch(run)  # 12 test images: another batch size than the export's example
    with torch.no_grad():
        expected = run.model(batch)
    onnx_result = export_run(run_dir, "onnx", log=lambda _: None)
    ts_result = export_run(run_dir, "torchscript", log=lambda _: None)
    got_onnx = OnnxRuntimeModel(onnx_result["file"])(batch)
    got_ts = torch.jit.load(ts_result["file"])(batch).detach()
    assert got_onnx.shape == expected.shape == (len(batch), 3)
    assert torch.allclose(got_onnx, expected, atol=1e-4), float((got_onnx - expected).abs().max())
    assert torch.allclose(got_ts, expected, atol=1e-4), float((got_ts - expected).abs().max())
    if name == "lora":  # merged: plain layers, no adapters left in the exported graph
        assert not any("lora" in n for n, _ in plain_model(load_run(run_dir)).named_parameters())
    for result in (onnx_result, ts_result):
        meta = read_metadata(result["file"])
        assert meta["class_names"] == run.class_names and meta["num_classes"] == 3
        assert meta["input_size"] == [3, run.cfg.data.transforms.crop, run.cfg.data.transforms.crop]
        assert meta["mean"] == pytest.approx(list(run.norm.mean)) and meta["std"] == pytest.approx(list(run.norm.std))
        assert meta["interpolation"] == run.norm.interpolation
        assert result["max_abs_logit_difference"] < 1e-4


def test_predict_with_the_onnx_engine_and_int8(tiny_overrides, tmp_path, colour_data):
    run_dir = trained(tiny_overrides, tmp_path, "cnn")
    result = runner.invoke(app, ["export", str(run_dir), "--quantize", "static", "--calibration", "8"])
    assert result.exit_code == 0, result.output
    record = json.loads((run_dir / "export" / "export.json").read_text())
    quantized = record["quantized"]
    assert quantized["mode"] == "static" and quantized["calibration_images"] == 8
    assert set(quantized["test_fp32"]) == {"top1", "f1_macro"}
    assert quantized["test_top1_change_points"] == pytest.approx(
        100 * (quantized["test_int8"]["top1"] - quantized["test_fp32"]["top1"]), abs=0.01)
    assert read_metadata(quantized["file"])["quantization"] == "static"
    assert "macro F1" in result.output  # the int8 model's test top-1 and macro F1, each beside fp32's
    result = runner.invoke(app, ["export", str(run_dir), "--format", "torchscript"])
    assert result.exit_code == 0, result.output
    files = json.loads((run_dir / "export" / "export.json").read_text())["files"]
    assert set(files) == {"model.onnx", "model.int8-static.onnx", "model.pt"}  # every export keeps its record
    flat = tmp_path / "flat"  # predict takes a folder of images
    flat.mkdir()
    for path in sorted((colour_data / "test").rglob("*.png")):
        (flat / f"{path.parent.name}-{path.name}").write_bytes(path.read_bytes())
    outputs = {}
    for engine, extra in (("torch", []), ("onnx", []), ("int8", ["--model", quantized["file"]])):
        out = tmp_path / f"{engine}.csv"
        args = ["predict", str(run_dir), str(flat), "--out", str(out), "--format", "probs",
                "--engine", "torch" if engine == "torch" else "onnx", *extra]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        rows = list(csv.reader(out.open()))
        outputs[engine] = np.array([[float(v) for v in row[1:]] for row in rows[1:]])
    assert outputs["onnx"].shape == outputs["torch"].shape == (12, 3)
    assert np.abs(outputs["onnx"] - outputs["torch"]).max() < 1e-5
    assert np.abs(outputs["int8"] - outputs["torch"]).max() < 0.2  # int8: close, not equal


def test_export_errors_are_one_line(tiny_overrides, tmp_path):
    run_dir = trained(tiny_overrides, tmp_path, "cnn")
    with pytest.raises(FgvcError, match="--format 'tflite': choose onnx or torchscript"):
        export_run(run_dir, "tflite")
    with pytest.raises(FgvcError, match="--quantize works on ONNX files .* --format torchscript has none"):
        export_run(run_dir, "torchscript", quantize_mode="static")
    with pytest.raises(FgvcError, match="--quantize 'int4': choose dynamic or static"):
        export_run(run_dir, "onnx", quantize_mode="int4")
    result = runner.invoke(app, ["predict", str(run_dir), str(tmp_path), "--engine", "onnx"])
    assert result.exit_code == 2 and "no ONNX model at" in result.output and "fgvc export" in result.output
    (tmp_path / "broken.onnx").write_bytes(b"not a model")
    with pytest.raises(FgvcError, match="broken.onnx is not a readable ONNX model"):
        OnnxRuntimeModel(tmp_path / "broken.onnx")


def test_dynamic_int8_that_loses_accuracy_points_to_static(tiny_overrides, tmp_path, monkeypatch):
    """The hint follows the measured change: shown when dynamic int8 loses more than the threshold,
    not otherwise, and never for static (the threshold is moved, the run and its measurement are real)."""
    from fgvc.export import run_export

    run_dir = trained(tiny_overrides, tmp_path, "cnn")
    for threshold, mode, shown in ((-101.0, "dynamic", True), (101.0, "dynamic", False), (-101.0, "static", False)):
        monkeypatch.setattr(run_export, "DYNAMIC_LOSS_HINT", threshold)
        messages: list[str] = []
        record = export_run(run_dir, "onnx", quantize_mode=mode, calibration=8, log=messages.append)
        change = record["quantized"]["test_top1_change_points"]
        hints = [m for m in messages if "--quantize static (calibrated on training images)" in m]
        assert bool(hints) == shown, (mode, threshold, messages)
        if shown:
            assert hints[0].startswith(f"dynamic int8 lost {-change:.1f} points")

"""``fgvc export RUN``: the run's model as ONNX or TorchScript with its preprocessing, checked against
fgvc's own logits on real images, and optionally quantised to int8 with the test-metric change."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from fgvc.api import RunFolder, TrainedRun, load_run, plain_model, predict
from fgvc.data import load_data
from fgvc.errors import FgvcError
from fgvc.evaluate.metrics import compute_metrics
from fgvc.export.engines import OnnxRuntimeModel
from fgvc.export.formats import FORMATS, export_onnx, export_torchscript
from fgvc.export.metadata import model_metadata
from fgvc.export.quantize import QUANTIZE, quantize

FILE_NAMES = {"onnx": RunFolder.ONNX_MODEL, "torchscript": RunFolder.TORCHSCRIPT_MODEL}


def _engine_run(run: TrainedRun, model) -> TrainedRun:
    return dataclasses.replace(run, model=model)


def _test_metrics(run: TrainedRun, images) -> dict[str, float]:
    probs = predict(run, images)
    metrics = compute_metrics(probs, torch.as_tensor(images.labels), run.class_names, run.cfg.eval.top_k)
    return {k: float(metrics[k]) for k in ("top1", "f1_macro") if k in metrics}


def _check_images(run: TrainedRun, splits, count: int = 16):
    """A few real images of the run's data (test, else val, else train) for the logit check."""
    for images in (splits.test, splits.val, splits.train):
        if images is not None and len(images):
            return images.subset(list(range(min(count, len(images)))))
    raise FgvcError(f"{run.run_dir}: its data set has no images to check the export on")


def export_run(run_dir: Path, fmt: str = "onnx", out: Optional[Path] = None, quantize_mode: Optional[str] = None,
               calibration: int = 64, log: Callable[[str], None] = print) -> dict[str, Any]:
    if fmt not in FORMATS:
        raise FgvcError(f"--format {fmt!r}: choose {' or '.join(FORMATS)}")
    if quantize_mode and quantize_mode not in QUANTIZE:
        raise FgvcError(f"--quantize {quantize_mode!r}: choose {' or '.join(QUANTIZE)}")
    if quantize_mode and fmt != "onnx":
        raise FgvcError(f"--quantize works on ONNX files (ONNX Runtime's int8); --format {fmt} has none: "
                        "use --format onnx")
    run = load_run(run_dir)
    model = plain_model(run)
    metadata = model_metadata(run)
    out = Path(out or RunFolder(run.run_dir).export_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / FILE_NAMES[fmt]
    started = time.perf_counter()
    (export_onnx if fmt == "onnx" else export_torchscript)(model, path, metadata)
    result: dict[str, Any] = {"run": str(run.run_dir), "format": fmt, "file": str(path),
                              "seconds": round(time.perf_counter() - started, 1), "metadata": metadata}

    # the exported model against fgvc's own on real images (odd batch size: the batch is dynamic)
    splits = load_data(run.cfg.data)
    images = _check_images(run, splits)
    exported = OnnxRuntimeModel(path) if fmt == "onnx" else load_torchscript(path)
    with torch.no_grad():
        batch = torch.stack([run.eval_transform(images.load(i)) for i in range(len(images))])[:7]
        diff = float((exported(batch) - model(batch)).abs().max())
    result["max_abs_logit_difference"] = diff
    log(f"wrote {path}: logits within {diff:.2e} of fgvc's on {len(batch)} real images")

    if quantize_mode:
        result["quantized"] = _quantize(run, splits, path, quantize_mode, calibration, log)
    record_file = out / RunFolder.EXPORT_RECORD
    result["record"] = str(record_file)
    # the newest export at the top (what scripts read), every file's own record under "files"
    earlier = json.loads(record_file.read_text()).get("files", {}) if record_file.is_file() else {}
    files = {**earlier, path.name: {k: v for k, v in result.items() if k not in ("record", "files")}}
    if "quantized" in result:
        files[Path(result["quantized"]["file"]).name] = result["quantized"]
    record_file.write_text(json.dumps({**result, "files": files}, indent=2))
    return result


DYNAMIC_LOSS_HINT = 2.0  # points of test top-1 lost by dynamic int8 beyond which static is suggested


def _quantize(run: TrainedRun, splits, fp32: Path, mode: str, calibration: int, log) -> dict[str, Any]:
    int8 = fp32.with_name(RunFolder.QUANTIZED_ONNX_MODEL.format(mode=mode))

    def batches():  # calibration: images of the training split under the eval transform, never test
        train = splits.train
        step = max(1, len(train) // calibration)
        picked = list(range(0, len(train), step))[:calibration]
        for start in range(0, len(picked), 16):
            yield torch.stack([run.eval_transform(train.load(i)) for i in picked[start:start + 16]])

    quantize(fp32, int8, mode, batches() if mode == "static" else None)
    record: dict[str, Any] = {"mode": mode, "file": str(int8), "calibration_images": calibration if mode == "static"
                              else 0}
    test = splits.test
    if test is not None and len(test) and test.is_labelled:
        fp32_metrics = _test_metrics(_engine_run(run, OnnxRuntimeModel(fp32)), test)
        int8_metrics = _test_metrics(_engine_run(run, OnnxRuntimeModel(int8)), test)
        record.update({"test_fp32": fp32_metrics, "test_int8": int8_metrics,
                       "test_top1_change_points": round(100 * (int8_metrics["top1"] - fp32_metrics["top1"]), 2)})
        log(f"wrote {int8}: test top1 {int8_metrics['top1']:.4f} (fp32 {fp32_metrics['top1']:.4f}, "
            f"{record['test_top1_change_points']:+.2f} points), macro F1 {int8_metrics['f1_macro']:.4f} "
            f"(fp32 {fp32_metrics['f1_macro']:.4f})")
        if mode == "dynamic" and record["test_top1_change_points"] < -DYNAMIC_LOSS_HINT:
            log(f"dynamic int8 lost {-record['test_top1_change_points']:.1f} points: it quantises activations on "
                "the fly, which CNNs take badly; --quantize static (calibrated on training images) usually keeps "
                "the fp32 numbers")
    else:
        log(f"wrote {int8} (no labelled test split to measure the change on)")
    return record


def load_torchscript(path: Path) -> torch.nn.Module:
    """A TorchScript file, without torch's deprecation notice for ``jit.load`` (the format fgvc exports
    for C++ and mobile users; its successor, torch.export, is ONNX's route here)."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch.jit.load.*deprecated.*")
        return torch.jit.load(str(path)).eval()

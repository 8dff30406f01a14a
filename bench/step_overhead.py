"""Where a training step's time goes besides the model, in one process: each piece of work fgvc's loop
adds per step, timed alone on a real batch, as a fraction of the model's own step (forward, backward,
AdamW) on the same batch. Pieces: normalising a uint8 batch here (what the workers no longer do),
the per-step NaN check, the training top-1 metric, mixup (when on), and the per-image work of a
data-loader worker (decode, augment, to tensor) in float32 and in uint8.

    python bench/step_overhead.py                                  # Lite0, 224 px, batch 32
    python bench/step_overhead.py --model resnet18 --size 96
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def timed(work, repeats: int) -> float:
    """Median seconds of ``work()`` over ``repeats`` calls (after one warm-up call)."""
    work()
    values = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        values.append(time.perf_counter() - started)
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tf_efficientnet_lite0")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from timm.data import Mixup

    from fgvc.config import load_config
    from fgvc.data import load_data
    from fgvc.data.batches import BatchPreparation
    from fgvc.data.transforms import build_transform, resolve_normalization
    from fgvc.models.assembly import build_network
    from fgvc.train.module import Classifier

    cfg = load_config("configs/demo.yaml", [
        f"model.name={args.model}", "model.pretrained=false", "model.pretrained_file=null", "strategy.name=full",
        "train.engine=lightning", "probe={}",
        f"data.transforms.resize={args.size}", f"data.transforms.crop={args.size}", f"train.batch_size={args.batch}"])
    splits = load_data(cfg.data)
    norm = resolve_normalization(cfg.data.transforms, cfg.model)
    float_tf = build_transform(cfg.data.transforms, norm, train=True)
    uint8_tf = build_transform(cfg.data.transforms, norm, train=True, uint8=True)
    pictures = [splits.train.load(i) for i in range(args.batch)]
    batch_u8 = torch.stack([uint8_tf(p) for p in pictures])
    targets = torch.as_tensor(splits.train.labels[: args.batch])
    model, _ = build_network(cfg, splits.num_classes, pretrained=False)
    module = Classifier(model, cfg, splits.train.class_counts())
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    prepare = BatchPreparation(norm, cfg.data.transforms)
    images = prepare.normalize(batch_u8)

    def model_step():
        loss = torch.nn.functional.cross_entropy(model(images), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    loss = torch.tensor(1.0)
    logits = torch.randn(args.batch, splits.num_classes)
    mixup = Mixup(mixup_alpha=0.2, cutmix_alpha=1.0, num_classes=splits.num_classes)
    step = timed(model_step, args.repeats)
    pieces = {
        "normalise the uint8 batch here": lambda: prepare.normalize(batch_u8),
        "NaN check (every step on the CPU)": lambda: module._watch_finite(loss, 0),
        "training top-1 update": lambda: module.train_top1(logits, targets),
        "mixup/CutMix (when on)": lambda: mixup(images.clone(), targets),
    }
    print(f"{cfg.model.name} at {args.size} px, batch {args.batch}, torch threads {torch.get_num_threads()}")
    print(f"  model step (forward, backward, AdamW): {step * 1e3:9.1f} ms")
    for name, work in pieces.items():
        seconds = timed(work, args.repeats * 4)
        print(f"  {name:37s}: {seconds * 1e3:9.2f} ms  ({seconds / step:.2%} of the model step)")
    per_image = {"float32 (ToTensor + Normalize)": float_tf, "uint8 (to tensor only)": uint8_tf}
    for name, transform in per_image.items():
        seconds = timed(lambda: [transform(p) for p in pictures], args.repeats) / args.batch
        print(f"  worker, one image, {name:30s}: {seconds * 1e3:6.2f} ms "
              f"({seconds * args.batch / step:.1%} of a model step per batch)")
    decode = timed(lambda: [splits.train.load(i) for i in range(args.batch)], args.repeats) / args.batch
    print(f"  worker, decoding one PNG from disk{'':15s}: {decode * 1e3:6.2f} ms "
          f"({decode * args.batch / step:.1%} of a model step per batch)")
    size = batch_u8.numel()
    print(f"  bytes per batch between processes: float32 {size * 4 / 2**20:.1f} MiB, uint8 {size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()

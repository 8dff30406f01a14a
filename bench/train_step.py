"""Training throughput of fgvc against a minimal plain-PyTorch loop, in the same process.

Same model, batch, resolution, optimizer and data (real PNG decode of the ELPV images, augmentation
included); each side runs the same number of steps after warm-up, alternately, best of --repeats.
Prints images/s and the ratio fgvc / plain (target: >= 0.95 on CPU), then the speed-up of
channels_last, bf16 autocast and torch.compile switches on fgvc's path.

    python bench/train_step.py                       # CPU
    python bench/train_step.py --device cuda --batch 64 --size 224 --steps 50
"""

from __future__ import annotations

import argparse
import time

import lightning as L
import torch

from fgvc.config import load_config
from fgvc.data import ImageDataset, load_data
from fgvc.data.transforms import build_transform, resolve_normalization
from fgvc.evaluate.runs import build_network
from fgvc.train.module import Classifier
from fgvc.train.run import build_datamodule, quiet_lightning


def config(args, *extra: str):
    sets = [f"model.name={args.model}", "model.pretrained=false", f"data.transforms.crop={args.size}",
            f"data.transforms.resize={args.size}", f"train.batch_size={args.batch}", "schedule.name=none",
            f"data.num_workers={args.workers}", "strategy.name=full", "train.deterministic=false",
            f"train.accelerator={'gpu' if args.device == 'cuda' else 'cpu'}", "output.dir=/tmp/fgvc-bench",
            *args.set, *extra]
    return load_config("configs/demo.yaml", sets)


def plain_loop(cfg, splits, device: str, steps: int, warmup: int) -> float:
    """The baseline: DataLoader + model + AdamW + cross-entropy, nothing else."""
    norm = resolve_normalization(cfg.data.transforms, cfg.model)
    dataset = ImageDataset(splits.train, build_transform(cfg.data.transforms, norm, train=True))
    loader = torch.utils.data.DataLoader(dataset, batch_size=cfg.train.batch_size, shuffle=True, drop_last=True,
                                         num_workers=cfg.data.num_workers, persistent_workers=cfg.data.num_workers > 0,
                                         pin_memory=device == "cuda")
    model, _ = build_network(cfg, splits.num_classes, pretrained=False)
    model = model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    loss_fn = torch.nn.CrossEntropyLoss()
    done, start = 0, None
    while done < steps + warmup:
        for images, targets in loader:
            if done == warmup:
                if device == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
            images, targets = images.to(device, non_blocking=True), targets.to(device, non_blocking=True)
            loss = loss_fn(model(images), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            done += 1
            if done == steps + warmup:
                break
    if device == "cuda":
        torch.cuda.synchronize()
    return steps * cfg.train.batch_size / (time.perf_counter() - start)


class StepTimer(L.Callback):
    """Times the steps after ``warmup``, counted across epochs (batch_idx restarts every epoch)."""

    def __init__(self, warmup: int, total: int):
        self.warmup, self.total, self.seen, self.start, self.count = warmup, total, 0, None, 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self.seen == self.warmup:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.seen >= self.warmup:
            self.count += 1
        self.seen += 1
        if self.seen == self.total:  # synchronise once at the end, as the plain loop does
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.end = time.perf_counter()


def fgvc_loop(cfg, splits, steps: int, warmup: int) -> float:
    """fgvc's path: datamodule, LightningModule, Trainer (its callbacks and seeding included)."""
    model, _ = build_network(cfg, splits.num_classes, pretrained=False)
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if cfg.train.compile:
        model.compile()
    module = Classifier(model, cfg, splits.train.class_counts())
    timer = StepTimer(warmup, steps + warmup)
    trainer = L.Trainer(max_epochs=1000, max_steps=steps + warmup, accelerator=cfg.train.accelerator,
                        devices=1, precision=cfg.train.precision, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        num_sanity_val_steps=0, use_distributed_sampler=False, callbacks=[timer])
    datamodule = build_datamodule(cfg, splits)
    datamodule.drop_last = True
    trainer.fit(module, datamodule=datamodule)
    return timer.count * cfg.train.batch_size / (timer.end - timer.start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--switches", action="store_true", help="also time channels_last / bf16 / compile")
    parser.add_argument("--set", action="append", default=[], help="config override, e.g. data.root=DIR")
    args = parser.parse_args()
    quiet_lightning()
    torch.manual_seed(0)
    base = config(args)
    splits = load_data(base.data)
    print(f"{args.model} at {args.size}px, batch {args.batch}, {args.steps} steps after {args.warmup} warm-up, "
          f"{args.workers} workers, device {args.device}, torch threads {torch.get_num_threads()}")
    plain, ours = [], []
    for _ in range(args.repeats):
        plain.append(plain_loop(base, splits, args.device, args.steps, args.warmup))
        ours.append(fgvc_loop(base, splits, args.steps, args.warmup))
    print(f"plain PyTorch loop : {max(plain):8.1f} images/s")
    print(f"fgvc (Lightning)   : {max(ours):8.1f} images/s")
    print(f"ratio fgvc / plain : {max(ours) / max(plain):.3f}  (target >= 0.95)")
    if args.switches:
        reference = max(ours)
        bf16 = "bf16-mixed"
        for name, extra in (("channels_last", ["train.channels_last=true"]), (bf16, [f"train.precision={bf16}"]),
                            ("torch.compile", ["train.compile=true"])):
            speed = fgvc_loop(config(args, *extra), splits, args.steps, args.warmup)
            print(f"fgvc + {name:14s}: {speed:8.1f} images/s  ({speed / reference:.2f}x)")


if __name__ == "__main__":
    main()

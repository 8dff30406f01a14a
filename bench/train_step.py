"""Training throughput of fgvc against a minimal plain-PyTorch loop and against a loop on timm's own
loader (``timm.data.create_loader``: uint8 batches, normalised by its prefetcher), in the same process.

Same model, batch, resolution, optimizer and data (real PNG decode of the ELPV images, augmentation
included); each loop runs the same number of steps after warm-up, the loops alternate, and the ratios
are the medians over --repeats rounds. Prints images/s, fgvc / timm loop (target >= 1.0) and fgvc /
plain (target >= 0.95), fgvc's old float32 batches for comparison, and optionally the decoded-image
cache (--decoded) and the channels_last, bf16 autocast and torch.compile switches (--switches).

    python bench/train_step.py                                          # CPU, resnet18 at 96 px
    python bench/train_step.py --model tf_efficientnet_lite0 --size 224 --decoded
    python bench/train_step.py --device cuda --batch 64 --size 224 --steps 50 --workers 12
"""

from __future__ import annotations

import argparse
import statistics
import time

import lightning as L
import torch

from fgvc.config import load_config
from fgvc.data import ImageDataset, load_data
from fgvc.data.transforms import build_transform, resolve_normalization
from fgvc.evaluate.runs import build_network
from fgvc.train.module import Classifier
from fgvc.train.engines.lightning import build_datamodule
from fgvc.train.quiet import quiet_lightning


def config(args, *extra: str):
    sets = [f"model.name={args.model}", "model.pretrained=false", "model.pretrained_file=null", f"data.transforms.crop={args.size}",
            f"data.transforms.resize={args.size}", f"train.batch_size={args.batch}", "schedule.name=none",
            f"data.num_workers={args.workers}", "strategy.name=full", "train.engine=lightning", "probe={}", "train.deterministic=false",
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
    return _steps(cfg, splits, loader, device, steps, warmup)


def timm_loop(cfg, splits, device: str, steps: int, warmup: int) -> float:
    """timm's data path: create_loader with its prefetcher (uint8 from the workers, normalised in this
    process or on the device), then the plain loop's step."""
    from timm.data import create_loader

    tcfg = cfg.data.transforms
    norm = resolve_normalization(tcfg, cfg.model)
    loader = create_loader(ImageDataset(splits.train), input_size=(3, tcfg.crop, tcfg.crop),
                           batch_size=cfg.train.batch_size, is_training=True, use_prefetcher=True,
                           device=torch.device(device), scale=tuple(tcfg.scale), ratio=tuple(tcfg.ratio),
                           hflip=tcfg.hflip, vflip=tcfg.vflip, color_jitter=None, interpolation=norm.interpolation,
                           mean=norm.mean, std=norm.std, num_workers=cfg.data.num_workers,
                           persistent_workers=cfg.data.num_workers > 0, pin_memory=device == "cuda")
    return _steps(cfg, splits, loader, device, steps, warmup)


def _steps(cfg, splits, loader, device: str, steps: int, warmup: int) -> float:
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
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--decoded", action="store_true", help="also time fgvc with data.decoded_cache")
    parser.add_argument("--cache-dir", default="/tmp/fgvc-bench-cache", help="where --decoded keeps its store")
    parser.add_argument("--switches", action="store_true", help="also time channels_last / bf16 / compile")
    parser.add_argument("--set", action="append", default=[], help="config override, e.g. data.root=DIR")
    args = parser.parse_args()
    quiet_lightning()
    torch.manual_seed(0)
    base = config(args)
    splits = load_data(base.data)
    print(f"{args.model} at {args.size}px, batch {args.batch}, {args.steps} steps after {args.warmup} warm-up, "
          f"{args.workers} workers, device {args.device}, torch threads {torch.get_num_threads()}")
    loops = {"plain PyTorch loop": lambda: plain_loop(base, splits, args.device, args.steps, args.warmup),
             "timm loop (create_loader)": lambda: timm_loop(base, splits, args.device, args.steps, args.warmup),
             "fgvc (Lightning)": lambda: fgvc_loop(base, splits, args.steps, args.warmup),
             "fgvc, float32 batches (old)": lambda: fgvc_loop(config(args, "data.uint8_batches=false"), splits,
                                                              args.steps, args.warmup)}
    if args.decoded:
        cached = config(args, "data.decoded_cache=true", f"data.cache_dir={args.cache_dir}")
        loops["fgvc + decoded cache"] = lambda: fgvc_loop(cached, splits, args.steps, args.warmup)
    speeds: dict[str, list[float]] = {name: [] for name in loops}
    names = list(loops)
    for round_ in range(args.repeats):  # each round starts one loop later: a slow drift over the run
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:  # (seen: ~10 %) hits all alike
            speeds[name].append(loops[name]())
    for name, values in speeds.items():
        print(f"{name:28s}: {statistics.median(values):8.1f} images/s  (each round: "
              f"{', '.join(f'{v:.1f}' for v in values)})")

    def ratio(a: str, b: str) -> float:
        return statistics.median(x / y for x, y in zip(speeds[a], speeds[b]))

    print(f"ratio fgvc / timm loop  : {ratio('fgvc (Lightning)', 'timm loop (create_loader)'):.3f}  (target >= 1.0)")
    print(f"ratio fgvc / plain      : {ratio('fgvc (Lightning)', 'plain PyTorch loop'):.3f}  (target >= 0.95)")
    print(f"uint8 / float32 batches : {ratio('fgvc (Lightning)', 'fgvc, float32 batches (old)'):.3f}")
    if args.decoded:
        print(f"decoded cache / files   : {ratio('fgvc + decoded cache', 'fgvc (Lightning)'):.3f}")
    ours = speeds["fgvc (Lightning)"]
    if args.switches:
        reference = max(ours)
        bf16 = "bf16-mixed"
        for name, extra in (("channels_last", ["train.channels_last=true"]), (bf16, [f"train.precision={bf16}"]),
                            ("torch.compile", ["train.compile=true"])):
            speed = fgvc_loop(config(args, *extra), splits, args.steps, args.warmup)
            print(f"fgvc + {name:14s}: {speed:8.1f} images/s  ({speed / reference:.2f}x)")


if __name__ == "__main__":
    main()

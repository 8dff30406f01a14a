"""Pipeline-parallel training speed on this machine, in one run: a 2-stage pipeline (2 processes x 1
thread, gloo, 1F1B) with the balanced split against the equal split and against one process with
2 threads, for a CNN and a ViT; and each pipeline's measured throughput against the plan's prediction
(fgvc pipeline plan, measured at 1 thread). Steps run on in-memory batches: only the model's
forward, backward and optimizer step (and the pipeline's messages) are timed.

    python bench/pipeline.py                       # EfficientNet-Lite0 and ViT-S/16 at 96 px, batch 32 = 4 x 8
    python bench/pipeline.py --size 64 --steps 6
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

MODELS = {"cnn": ["model.name=tf_efficientnet_lite0"], "vit": ["model.name=vit_small_patch16_224"]}


def config(kind: str, args, extra=()):
    from fgvc.config import load_config

    size = args.size
    sets = [*MODELS[kind], "model.pretrained=false", f"data.transforms.resize={size}", f"data.transforms.crop={size}",
            f"train.batch_size={args.batch}", f"train.pipeline.microbatches={args.microbatches}",
            "train.pipeline.stages=2", "train.pipeline.schedule=1f1b", "strategy.name=full", "optim.name=adamw",
            *(["model.img_size=%d" % size] if kind == "vit" else []), *extra]
    return load_config(None, sets)


def _worker(rank, world, cfg, cuts, port, steps, out):
    import torch.distributed as dist

    from fgvc.models.assembly import build_network
    from fgvc.train.pipeline_stages import build_rank

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(0)
    model, _ = build_network(cfg, 10)
    schedule, _, optimizer = build_rank(cfg, model, cuts, rank, world, torch.device("cpu"), torch.nn.CrossEntropyLoss())
    size, batch = cfg.data.transforms.crop, cfg.train.batch_size
    images, targets = torch.randn(batch, 3, size, size), torch.randint(0, 10, (batch,))
    times = []
    for step in range(steps + 2):  # two warm-up steps
        dist.barrier()
        started = time.perf_counter()
        optimizer.zero_grad()
        if rank == 0:
            schedule.step(images)
        elif rank == world - 1:
            schedule.step(target=targets)
        else:
            schedule.step()
        optimizer.step()
        dist.barrier()
        if step >= 2:
            times.append(time.perf_counter() - started)
    if rank == 0:
        Path(out).write_text(str(batch / statistics.median(times)))
    dist.destroy_process_group()


def pipeline_speed(cfg, cuts, steps) -> float:
    import torch.multiprocessing as mp

    from fgvc.train.pipeline_stages import free_port

    port = free_port()
    with tempfile.NamedTemporaryFile(suffix=".txt") as out:
        mp.start_processes(_worker, args=(2, cfg, cuts, port, steps, out.name), nprocs=2, start_method="spawn")
        return float(Path(out.name).read_text())


def single_speed(cfg, steps) -> float:
    from fgvc.models.assembly import build_network

    torch.set_num_threads(2)
    torch.manual_seed(0)
    model, _ = build_network(cfg, 10)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    size, batch = cfg.data.transforms.crop, cfg.train.batch_size
    images, targets = torch.randn(batch, 3, size, size), torch.randint(0, 10, (batch,))
    times = []
    for step in range(steps + 2):
        started = time.perf_counter()
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(images), targets).backward()
        optimizer.step()
        if step >= 2:
            times.append(time.perf_counter() - started)
    return batch / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--microbatches", type=int, default=4)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--kinds", default="cnn,vit")
    args = parser.parse_args()
    from fgvc.train.pipeline_plan import plan_pipeline

    print(f"{args.size} px, batch {args.batch} = {args.microbatches} x {args.batch // args.microbatches}, 2 stages "
          f"x 1 thread (gloo, 1F1B) vs 1 process x 2 threads; median of {args.steps} steps")
    for kind in args.kinds.split(","):
        cfg = config(kind, args, ["train.threads=1"])
        plan = plan_pipeline(cfg, num_classes=10)
        measured = {split: pipeline_speed(cfg, plan[split]["cuts"], args.steps) for split in ("equal", "balanced")}
        single = single_speed(cfg, args.steps)
        print(f"{cfg.model.name}: {len(plan['blocks'])} blocks")
        for split in ("equal", "balanced"):
            predicted = plan[split]["predicted_images_per_s"]
            print(f"  {split:9s} cuts {plan[split]['cuts']}: {measured[split]:6.1f} img/s measured, {predicted:6.1f} "
                  f"predicted ({measured[split] / predicted:.2f} of it)")
        print(f"  one process, 2 threads: {single:6.1f} img/s")
        print(f"  balanced / equal {measured['balanced'] / measured['equal']:.2f}x, "
              f"balanced / one process {measured['balanced'] / single:.2f}x")


if __name__ == "__main__":
    main()

"""The pipeline engine's stages (:mod:`fgvc.train.engines.pipeline` drives them): the network cut into
``train.pipeline.stages`` sequential stages, one per process (``torch.distributed.pipelining``:
``PipelineStage`` + ``ScheduleGPipe`` / ``Schedule1F1B``; gloo on the CPU, NCCL on GPUs).

Every process builds the whole network from the config and the seed, so all start from the same
weights; each trains only its stage's blocks with its own optimizer. Rank 0 feeds the images, the
last rank computes the loss. After each epoch the stages' weights are gathered on rank 0, which
validates the whole model, writes history.csv and Lightning-format checkpoints that load back into
the whole model, so the run folder is the same as any run's. Those checkpoints also hold every
stage's optimizer (and scheduler) state and the cut points, so a resume goes on from the last
finished epoch exactly as the uninterrupted run would have (each epoch's data order, augmentation
and dropout are drawn from (seed, epoch)). Batches that do not fill ``train.batch_size`` are dropped
(the micro-batches must have equal shapes); BatchNorm sees micro-batches, so a ViT (LayerNorm)
matches a single-process run, a ResNet only closely. Each stage's blocks live on its own device;
validation and the final evaluation run the whole model on rank 0's device, so the whole model must
still fit there (evaluating through the pipeline is not done yet).
"""

from __future__ import annotations

import math
import os
import re
import socket
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import lightning as L
import torch
import torch.distributed as dist
from torch import nn

from fgvc.config import ExperimentConfig
from fgvc.data import load_data
from fgvc.data.datamodule import EpochSampler, SeededImageDataset, mix_seed, seed_everything_quietly
from fgvc.data.transforms import transforms_for
from fgvc.errors import DiskFullError, FgvcError, NonFiniteLossError
from fgvc.models.assembly import build_network
from fgvc.models.pipeline_split import build_stages, equal_cuts, split_into_pieces
from fgvc.models.strategies import set_norm_modes
from fgvc.runfolder import RunFolder
from fgvc.trust import read_checkpoint
from fgvc.train.callbacks import print_epoch, write_history
from fgvc.train.checkpoint_io import save_checkpoint_file
from fgvc.train.losses import build_loss
from fgvc.train.module import classification_metrics
from fgvc.train.optim import build_optimizer, build_param_groups, build_scheduler, step_timm_scheduler
from fgvc.train.quiet import quiet_lightning


def choose_cuts(cfg: ExperimentConfig, model: nn.Module, num_classes: int) -> list[int]:
    """The configured split's cut points for ``model``; ``balanced`` measures its blocks first (fgvc
    pipeline plan)."""
    p = cfg.train.pipeline
    count = len(split_into_pieces(model))
    if p.split == "equal":
        return equal_cuts(count, p.stages)
    if isinstance(p.split, list):
        if sorted(set(p.split)) != list(p.split) or p.split[0] < 1 or p.split[-1] >= count:
            raise FgvcError(f"train.pipeline.split {p.split}: cut points must rise strictly inside 1..{count - 1} "
                            f"(the model has {count} blocks)")
        return list(p.split)
    from fgvc.train.pipeline_plan import plan_pipeline

    return plan_pipeline(cfg, repeats=2, num_classes=num_classes)["balanced"]["cuts"]


def free_port() -> int:
    """A TCP port on localhost that nothing listens on now (the stages' rendezvous)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn_stages(cfg: ExperimentConfig, world: int, folder: RunFolder, cuts: list[int],
           resume_from: Optional[Path] = None) -> None:
    import torch.multiprocessing as mp

    port = free_port()
    try:
        mp.start_processes(_spawned, args=(world, cfg, str(folder.path), cuts, port, resume_from), nprocs=world,
                           start_method="spawn")
    except mp.ProcessRaisedException as exc:  # the stage's own error, without the traceback
        lines = [line for line in str(exc).strip().splitlines()
                 if re.match(r"^[\w.]+(Error|Exception|Interrupt): ", line)]
        last = lines[-1] if lines else str(exc).strip().splitlines()[-1]
        name, _, message = last.partition(": ")
        if name.endswith("NonFiniteLossError"):
            raise NonFiniteLossError(message) from None
        if name.endswith("DiskFullError"):  # rank 0 could not write a checkpoint: the run says what is intact
            raise DiskFullError(message) from None
        raise FgvcError(f"a pipeline stage failed: {message or last}") from None
    except mp.ProcessExitedException as exc:  # killed, or died before it could say why
        raise FgvcError(f"a pipeline stage ended early ({exc}); a script that trains a pipeline needs "
                        "`if __name__ == '__main__':` around its code (processes are spawned)") from None


def _spawned(rank: int, world: int, cfg: ExperimentConfig, folder: str, cuts: list[int], port: int,
             resume_from: Optional[Path]) -> None:
    init_rank(cfg, rank, world, port)
    try:
        train_stage(cfg, rank, world, RunFolder(folder), cuts, resume_from)
    finally:
        dist.destroy_process_group()


def init_rank(cfg: ExperimentConfig, rank: int, world: int, port: Optional[int]) -> None:
    """Join the stages' process group (``port``: fgvc's own rendezvous; None: torchrun's)."""
    quiet_lightning()
    if port is not None:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(cfg.train.threads or max(1, (os.cpu_count() or 1) // world))
    backend = "nccl" if _device(rank).type == "cuda" else "gloo"
    dist.init_process_group(backend, rank=rank, world_size=world)


def _device(rank: int) -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)) % torch.cuda.device_count())
    return torch.device("cpu")


class FrozenStage(nn.Module):
    """A stage with nothing to train and no gradient to pass on: its forward builds no graph and its
    output is a fresh leaf, so the schedule's backward does no work here (frozen transfer blocks)."""

    def __init__(self, stage: nn.Module):
        super().__init__()
        self.stage = stage

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            out = self.stage(x)
        return out.requires_grad_(True)


@torch.no_grad()
def _stage_examples(stages: Sequence[nn.Module], rank: int, cfg: ExperimentConfig, device: torch.device):
    """A micro-batch's input and output of stage ``rank`` (shapes and dtypes only): static shapes, so
    no stage has to infer them from its neighbours at run time."""
    microbatch = cfg.train.batch_size // cfg.train.pipeline.microbatches
    size = cfg.data.transforms.crop
    x = torch.zeros(microbatch, 3, size, size, device=device)
    training = [s.training for s in stages]
    for s in stages[:rank]:
        s.eval()
        x = s(x)
    stage = stages[rank].eval()
    out = stage(x)
    for s, mode in zip(stages, training):
        s.train(mode)
    return x, out


def _owned_names(model: nn.Module, stage: nn.Module) -> list[str]:
    """The whole model's state_dict keys whose tensors this stage holds."""
    ids = {id(t) for t in (*stage.parameters(), *stage.buffers())}
    return [name for name, t in model.state_dict(keep_vars=True).items() if id(t) in ids]


def build_rank(cfg: ExperimentConfig, model: nn.Module, cuts: Sequence[int], rank: int, world: int,
               device: torch.device, loss_fn: nn.Module):
    """This rank's (schedule, stage, optimizer or None) for ``model`` cut at ``cuts``."""
    from torch.distributed.pipelining import PipelineStage, Schedule1F1B, ScheduleGPipe

    stages = build_stages(split_into_pieces(model), cuts)
    stage = stages[rank]
    # A frozen first stage runs without a graph. Later stages always pass a gradient back (the schedule's
    # messages are fixed), so only the first stage can skip its backward.
    runner = FrozenStage(stage) if rank == 0 and not any(p.requires_grad for p in stage.parameters()) else stage
    stage.to(device)  # only this stage's blocks: the others stay in host memory
    example_in, example_out = (t.to(device) for t in _stage_examples(stages, rank, cfg, torch.device("cpu")))
    # the metadata says which activations carry gradients: every stage's output, every received input
    example_in.requires_grad_(bool(rank))
    example_out.requires_grad_(True)
    # static shapes: what flows forward, and the gradients that flow back (none into the images)
    pipeline_stage = PipelineStage(runner, rank, world, device, input_args=example_in, output_args=example_out,
                                   input_grads=example_in if rank else None,
                                   output_grads=None if rank == world - 1 else example_out)
    # every rank gets the loss: a schedule without one runs forward only (the last stage computes it)
    schedule_type = ScheduleGPipe if cfg.train.pipeline.schedule == "gpipe" else Schedule1F1B
    schedule = schedule_type(pipeline_stage, cfg.train.pipeline.microbatches, loss_fn=loss_fn)
    owned = {id(q) for q in stage.parameters()}
    groups = [dict(g, params=[q for q in g["params"] if id(q) in owned])
              for g in build_param_groups(model, cfg.optim, cfg.strategy)]
    groups = [g for g in groups if g["params"]]
    return schedule, stage, build_optimizer(groups, cfg.optim) if groups else None


def train_stage(cfg: ExperimentConfig, rank: int, world: int, folder: RunFolder, cuts: list[int],
                 resume_from: Optional[Path] = None) -> int:
    """This rank's part of every epoch (from the epoch after ``resume_from``'s); rank 0 also validates
    and writes history and checkpoints. Returns the number of epochs trained."""
    device = _device(rank)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    splits = load_data(cfg.data)
    # the same seed: the same weights in every process (or, resumed, the checkpoint's)
    model, _ = build_network(cfg, splits.num_classes, pretrained=resume_from is None)
    saved = read_checkpoint(resume_from, "start the run again") if resume_from is not None else None
    if saved is not None:
        model.load_state_dict({k.removeprefix("model."): v for k, v in saved["state_dict"].items()})
    loss_fn = build_loss(cfg.loss, splits.train.class_counts()).to(device)
    schedule, stage, optimizer = build_rank(cfg, model, cuts, rank, world, device, loss_fn)
    last = rank == world - 1
    batches_per_epoch = len(splits.train) // cfg.train.batch_size
    if batches_per_epoch == 0:
        raise FgvcError(f"train.batch_size ({cfg.train.batch_size}) is larger than the training split "
                        f"({len(splits.train)} images): a pipeline drops incomplete batches")
    scheduler = (build_scheduler(optimizer, cfg.schedule, cfg.train.epochs, batches_per_epoch, cfg.train.monitor)
                 if optimizer else None)
    torch_scheduler = scheduler["scheduler"] if scheduler and isinstance(
        scheduler["scheduler"], torch.optim.lr_scheduler.LRScheduler) else None  # timm's are set by step count
    dataset = SeededImageDataset(splits.train, transforms_for(cfg).train, cfg.seed)
    names = _owned_names(model, stage)
    rows: list[dict] = []
    best: Optional[float] = None
    start_epoch = 0
    if saved is not None:
        start_epoch, best = int(saved["epoch"]) + 1, saved["pipeline_best"]
        optimizer_state, scheduler_state = saved["pipeline_states"][rank]
        if optimizer is not None:
            optimizer.load_state_dict(optimizer_state)
        if torch_scheduler is not None:
            torch_scheduler.load_state_dict(scheduler_state)
        if rank == 0:  # history up to the checkpoint (a kill may have come between a row and its checkpoint)
            rows = [row for row in folder.history() if int(row["epoch"]) < start_epoch]
    monitor, higher = cfg.train.monitor, "loss" not in cfg.train.monitor
    for epoch in range(start_epoch, cfg.train.epochs):
        started = time.perf_counter()
        seed_everything_quietly(mix_seed(cfg.seed, epoch, 7, rank), devices=True)  # dropout: resume-exact
        sampler = EpochSampler(len(splits.train), cfg.seed, shuffle=True, shard=False)
        sampler.set_epoch(epoch)
        order = list(sampler)
        batches = [order[i:i + cfg.train.batch_size] for i in range(0, batches_per_epoch * cfg.train.batch_size,
                                                                    cfg.train.batch_size)]
        loader = (torch.utils.data.DataLoader(dataset, batch_sampler=batches, num_workers=cfg.data.num_workers)
                  if rank == 0 else [None] * len(batches))
        model.train()
        if cfg.strategy.freeze_bn:
            set_norm_modes(model)
        loss_sum, correct, seen = 0.0, 0, 0
        for step, (batch, keys) in enumerate(zip(loader, batches)):
            if optimizer:
                optimizer.zero_grad(set_to_none=True)
            if rank == 0:
                schedule.step(batch[0].to(device))
            elif last:
                targets = torch.as_tensor([int(splits.train.labels[i]) for _, i in keys], device=device)
                losses: list[torch.Tensor] = []
                logits = schedule.step(target=targets, losses=losses)
                loss = torch.stack([x.detach().float() for x in losses]).mean()
                loss_sum += float(loss) * len(keys)
                correct += int((logits.argmax(-1) == targets).sum()) if logits is not None else 0
                seen += len(keys)
            else:
                schedule.step()
            finite = torch.tensor([1.0 if not last or math.isfinite(float(loss)) else 0.0])
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)  # every stage stops together on a NaN loss
            if finite.item() == 0:
                raise NonFiniteLossError(f"training loss is nan or inf at epoch {epoch}, batch {step}")
            if optimizer:
                optimizer.step()
            if torch_scheduler is not None:
                torch_scheduler.step()  # onecycle: torch's, per step
            elif scheduler:  # timm's, stepped the way the Lightning module steps it
                step_timm_scheduler(scheduler["scheduler"], scheduler["interval"], epoch * len(batches) + step + 1,
                                    epoch)
        train_stats = [None]
        if last:
            train_stats = [{"train/loss": loss_sum / max(1, seen), "train/top1": correct / max(1, seen),
                            "lr": optimizer.param_groups[-1]["lr"] if optimizer else 0.0}]
        dist.broadcast_object_list(train_stats, src=world - 1)
        own = {"weights": {name: t.detach().cpu() for name, t in model.state_dict().items() if name in names},
               "states": _on_cpu((optimizer.state_dict() if optimizer else None,
                                  torch_scheduler.state_dict() if torch_scheduler else None))}
        gathered = [None] * world if rank == 0 else None
        dist.gather_object(own, gathered, dst=0)
        if rank == 0:
            merged = {k: v for part in gathered for k, v in part["weights"].items()}
            model.load_state_dict(merged, strict=False)
            lr = train_stats[0].pop("lr")  # the head's, which the last stage always trains
            metrics = {**train_stats[0], **_validate(model, cfg, splits, loss_fn, device)}
            rows.append({"epoch": epoch, "seconds": round(time.perf_counter() - started, 3), "lr": lr,
                         **{k: round(v, 6) for k, v in sorted(metrics.items())}})
            write_history(folder.history_file, rows)
            print_epoch(epoch, cfg.train.epochs, metrics, lr, rows[-1]["seconds"])
            value = metrics.get(monitor, metrics["train/loss"])
            improved = best is None or (value > best if higher else value < best)
            best = value if improved else best
            _save(model, folder, epoch, len(batches) * (epoch + 1), improved,
                  {"pipeline_cuts": list(cuts), "pipeline_best": best, "pipeline_states": [p["states"] for p in gathered]})
        dist.barrier()
    return cfg.train.epochs


@torch.no_grad()
def _validate(model: nn.Module, cfg: ExperimentConfig, splits, loss_fn, device) -> dict[str, float]:
    """val/loss, val/top1, val/f1_macro (and top-k) of the whole model, on rank 0."""
    if splits.val is None or not len(splits.val):
        return {}
    loader = torch.utils.data.DataLoader(
        SeededImageDataset(splits.val, transforms_for(cfg).eval, cfg.seed),
        batch_size=cfg.eval.batch_size, sampler=EpochSampler(len(splits.val), cfg.seed, shuffle=False, shard=False),
        num_workers=cfg.data.num_workers)
    # rank 0 alone: the other stages must not be asked to join a metric's sync
    metrics = classification_metrics(splits.num_classes, "val/", cfg.eval.top_k, sync=False).to(device)
    model.to(device)  # rank 0 validates the whole model (it must fit one device; see the module docstring)
    was_training = model.training
    model.eval()
    loss_sum, count = 0.0, 0
    for images, targets in loader:
        images, targets = images.to(device), targets.to(device)
        logits = model(images)
        loss_sum += float(loss_fn(logits, targets)) * len(targets)
        count += len(targets)
        metrics.update(logits, targets)
    model.train(was_training)
    return {"val/loss": loss_sum / max(1, count), **{k: float(v) for k, v in metrics.compute().items()}}


def _on_cpu(value):
    """``value`` (nested containers of tensors: an optimizer's state) with every tensor on the CPU."""
    from torch.utils._pytree import tree_map

    return tree_map(lambda t: t.detach().cpu() if isinstance(t, torch.Tensor) else t, value)


def _save(model: nn.Module, folder: RunFolder, epoch: int, global_step: int, best: bool,
          resume_state: dict[str, Any]) -> None:
    """last.ckpt (and best.ckpt) in Lightning's layout: state_dict keys prefixed ``model.``, plus what a
    resume needs (each stage's optimizer and scheduler state, the cut points, the best monitored value)."""
    checkpoint: dict[str, Any] = {"epoch": epoch, "global_step": global_step,
                                  "state_dict": {f"model.{k}": v.detach().cpu() for k, v in model.state_dict().items()},
                                  "pipeline": True, **resume_state}
    folder.checkpoints.mkdir(parents=True, exist_ok=True)
    # best first, as Lightning does: once last.ckpt says an epoch finished, its best.ckpt is on disk too
    for which in ([RunFolder.BEST, RunFolder.LAST] if best else [RunFolder.LAST]):
        # tmp + fsync + replace in the same folder: a kill or a full disk never leaves half a checkpoint
        save_checkpoint_file(checkpoint, folder.checkpoint(which))

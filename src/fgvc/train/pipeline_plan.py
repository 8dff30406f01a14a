"""``fgvc pipeline plan``: measure each block of a network (forward and backward time, activation and
parameter memory) at the configured micro-batch and resolution, cut it into the stages that minimise
the slowest one (the linear-partition problem, solved exactly by dynamic programming) under a memory
limit, and predict the pipeline's throughput and bubble for GPipe and 1F1B against the equal split.

"The speed bottleneck is the slowest stage": with S stages and M micro-batches both schedules take
(M + S - 1) slots of the slowest stage's time per batch, so the bubble is (S - 1) / (M + S - 1);
1F1B holds at most S - s micro-batches' activations on stage s, GPipe all M.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch

from fgvc.config import ExperimentConfig
from fgvc.errors import ConfigError
from fgvc.models.assembly import build_network
from fgvc.models.pipeline_split import Piece, equal_cuts, split_into_pieces
from fgvc.runfolder import RunFolder

# Adam-style optimizers keep two tensors per trainable parameter, and the gradient is a third.
TRAINABLE_COPIES = 4


@dataclass
class BlockCost:
    name: str
    forward_s: float
    backward_s: float
    activation_bytes: int  # saved for backward per micro-batch (0 where no backward runs)
    output_bytes: int  # what the block sends on per micro-batch
    param_bytes: int
    trainable_bytes: int

    @property
    def seconds(self) -> float:
        return self.forward_s + self.backward_s


def _bytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def measure_blocks(pieces: Sequence[Piece], example: torch.Tensor, repeats: int = 3) -> list[BlockCost]:
    """Median forward and forward+backward times of each piece on ``example`` (one micro-batch), in
    training mode; a piece whose input needs no gradient and which has nothing to train does no
    backward work (frozen blocks at the front of the network)."""
    costs, x, needs_grad = [], example, False
    for piece in pieces:
        piece.train()
        trainable = [p for p in piece.parameters() if p.requires_grad]
        needs_grad = needs_grad or bool(trainable)
        forward, both, saved = [], [], 0
        for attempt in range(repeats + 1):  # the first is a warm-up
            inp = x.detach().requires_grad_(x.is_floating_point() and needs_grad and bool(costs) and costs[-1].backward_s > 0)
            counted = []

            def pack(t):
                counted.append(_bytes(t))
                return t

            started = time.perf_counter()
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), torch.set_grad_enabled(needs_grad):
                out = piece(inp)
            middle = time.perf_counter()
            if needs_grad and out.requires_grad:
                out.backward(torch.ones_like(out))
            ended = time.perf_counter()
            if attempt:
                forward.append(middle - started)
                both.append(ended - started)
                saved = sum(counted)
        for p in piece.parameters():
            p.grad = None
        f, fb = statistics.median(forward), statistics.median(both)
        params = list(piece.parameters())
        costs.append(BlockCost(piece.name, f, max(0.0, fb - f), saved if needs_grad else 0, _bytes(out),
                               sum(_bytes(p) for p in params), sum(_bytes(p) for p in params if p.requires_grad)))
        x = out.detach()
    return costs


def in_flight(stage: int, stages: int, microbatches: int, schedule: str) -> int:
    """Micro-batches whose activations stage ``stage`` (0-based) holds at most."""
    return microbatches if schedule == "gpipe" else min(microbatches, stages - stage)


def stage_memory(costs: Sequence[BlockCost], stage: int, stages: int, microbatches: int, schedule: str) -> int:
    weights = sum(c.param_bytes + (TRAINABLE_COPIES - 1) * c.trainable_bytes for c in costs)
    return weights + in_flight(stage, stages, microbatches, schedule) * sum(c.activation_bytes for c in costs)


def balanced_cuts(costs: Sequence[BlockCost], stages: int, microbatches: int, schedule: str,
                  memory_limit: Optional[float] = None) -> list[int]:
    """Cut points minimising the slowest stage's time, every stage within ``memory_limit`` bytes
    (exact: dynamic programming over (stages, blocks))."""
    n = len(costs)
    equal_cuts(n, stages)  # the same clear error for too many stages
    prefix = [0.0]
    for c in costs:
        prefix.append(prefix[-1] + c.seconds)
    inf = float("inf")
    best = [[inf] * (n + 1) for _ in range(stages + 1)]
    cut_at = [[0] * (n + 1) for _ in range(stages + 1)]
    best[0][0] = 0.0
    for k in range(1, stages + 1):
        for i in range(k, n - (stages - k) + 1):  # the first i blocks in k stages, leaving one per later stage
            for j in range(k - 1, i):
                if best[k - 1][j] == inf:
                    continue
                if memory_limit and stage_memory(costs[j:i], k - 1, stages, microbatches, schedule) > memory_limit:
                    continue
                value = max(best[k - 1][j], prefix[i] - prefix[j])
                if value < best[k][i]:
                    best[k][i], cut_at[k][i] = value, j
    if best[stages][n] == inf:
        raise ConfigError(f"no split into {stages} stages fits train.pipeline.memory_limit_gb="
                          f"{memory_limit / 1e9:g}: raise it or use more stages")
    cuts, i = [], n
    for k in range(stages, 1, -1):
        i = cut_at[k][i]
        cuts.append(i)
    return sorted(cuts)


def describe_split(costs: Sequence[BlockCost], cuts: Sequence[int], microbatches: int, microbatch: int,
                   schedule: str) -> dict:
    """Per stage: blocks, time per micro-batch, memory; the bottleneck, predicted images/s and bubble."""
    bounds = [0, *cuts, len(costs)]
    stages = len(bounds) - 1
    rows = []
    for s, (a, b) in enumerate(zip(bounds, bounds[1:])):
        part = costs[a:b]
        rows.append({"stage": s, "blocks": [c.name for c in part], "first": a, "seconds": sum(c.seconds for c in part),
                     "memory_bytes": stage_memory(part, s, stages, microbatches, schedule),
                     "sends_bytes": part[-1].output_bytes})
    slowest = max(rows, key=lambda r: r["seconds"])
    step = (microbatches + stages - 1) * slowest["seconds"]
    whole = sum(c.seconds for c in costs) * microbatches
    return {"cuts": list(cuts), "stages": rows, "bottleneck_stage": slowest["stage"],
            "bubble_fraction": (stages - 1) / (microbatches + stages - 1),
            "predicted_images_per_s": microbatches * microbatch / step if step else 0.0,
            "single_process_images_per_s": microbatches * microbatch / whole if whole else 0.0,
            "predicted_speedup": whole / step if step else 0.0}


def plan_pipeline(cfg: ExperimentConfig, stages: Optional[int] = None, microbatches: Optional[int] = None,
                  repeats: int = 3, num_classes: int = 10) -> dict:
    """Measure ``cfg``'s network block by block and compare the equal and the balanced split."""
    p = cfg.train.pipeline
    stages, microbatches = stages or p.stages, microbatches or p.microbatches
    if cfg.train.batch_size % microbatches:
        raise ConfigError(f"train.batch_size ({cfg.train.batch_size}) must divide into train.pipeline.microbatches "
                          f"({microbatches}) equal micro-batches")
    microbatch = cfg.train.batch_size // microbatches
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    model, _ = build_network(cfg, num_classes)
    pieces = split_into_pieces(model)
    equal = equal_cuts(len(pieces), stages)
    size = cfg.data.transforms.crop
    costs = measure_blocks(pieces, torch.randn(microbatch, 3, size, size), repeats)
    limit = p.memory_limit_gb * 1e9 if p.memory_limit_gb else None
    balanced = balanced_cuts(costs, stages, microbatches, p.schedule, limit)
    chosen = {"equal": equal, "balanced": balanced}.get(p.split, p.split) if isinstance(p.split, str) else list(p.split)
    return {
        "model": cfg.model.name, "image_size": size, "batch_size": cfg.train.batch_size, "microbatches": microbatches,
        "microbatch": microbatch, "stages": stages, "schedule": p.schedule, "threads": torch.get_num_threads(),
        "memory_limit_bytes": limit, "blocks": [asdict(c) for c in costs],
        "equal": describe_split(costs, equal, microbatches, microbatch, p.schedule),
        "balanced": describe_split(costs, balanced, microbatches, microbatch, p.schedule),
        "configured_split": chosen,
        "gpipe_vs_1f1b_peak_memory_bytes": {
            schedule: max(stage_memory(costs[a:b], s, stages, microbatches, schedule)
                          for s, (a, b) in enumerate(zip([0, *balanced], [*balanced, len(costs)])))
            for schedule in ("gpipe", "1f1b")},
    }


def write_plan(plan: dict, out: Path) -> tuple[Path, Path]:
    """plan.json and plan.png (stage times of both splits, the bottleneck marked) into ``out``."""
    from fgvc.report.pipeline_plot import plot_plan

    folder = RunFolder(out)
    folder.path.mkdir(parents=True, exist_ok=True)
    folder.pipeline_plan.write_text(json.dumps(plan, indent=2))
    return folder.pipeline_plan, plot_plan(plan, folder.pipeline_plan_plot)

"""A study: every config of a folder run over the same seeds, profiled and compared with the first.

``configs/study_cnn_vs_vit/`` pits a CNN against a ViT with matched trainable parameters; the study
reports accuracy with CIs, trainable parameters, training time per epoch and memory, and the
paired verdicts of ``fgvc compare``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Optional, Sequence

from fgvc.config import load_config
from fgvc.data import load_data
from fgvc.errors import FgvcError
from fgvc.models.assembly import build_network
from fgvc.models.strategies import count_parameters, unfreeze_stage_for_epoch
from fgvc.experiments.compare import compare_groups
from fgvc.experiments.groups import member_metrics
from fgvc.experiments.executors import Executor, LocalExecutor
from fgvc.experiments.repeat import finish_repeat, plan_repeat
from fgvc.models.summary import summarize


def profile(cfg, num_classes: int) -> dict:
    """Trainable / total parameters and memory of the config's model under its strategy.

    Gradual unfreezing is profiled at its last epoch, where it trains most (and needs most memory);
    ``trainable_params_at_start`` says what it trains first.
    """
    model, _ = build_network(cfg, num_classes, pretrained=False)
    start = {}
    if cfg.strategy.name == "gradual":
        start = {"trainable_params_at_start": count_parameters(model)[1]}
        unfreeze_stage_for_epoch(model, cfg.strategy, cfg.train.epochs - 1)
    s = summarize(model, cfg.model.name, cfg.strategy.name, cfg.optim.name, batch_size=min(cfg.train.batch_size, 8),
                  image_size=cfg.data.transforms.crop)
    return {"total_params": s.total_params, "trainable_params": s.trainable_params,
            "param_grad_optimizer_bytes": s.param_bytes + s.grad_bytes + s.optimizer_bytes,
            "activation_bytes_per_image": (s.activation_bytes or 0) // max(1, s.batch_size), **start}


def study(folder: Path, seeds: Sequence[int], out: Optional[Path] = None, split: str = "test",
          overrides: Sequence[str] = (), log: Callable[[str], None] = print,
          executor: Optional[Executor] = None) -> dict:
    """Every config of ``folder`` over ``seeds``; all arms' runs go to ``executor`` at once."""
    folder = Path(folder)
    configs = sorted(folder.glob("*.yaml"))
    if len(configs) < 2:
        raise FgvcError(f"a study needs at least two configs in {folder}, found {len(configs)}")
    out = Path(out or Path("runs") / folder.name)
    cfgs = {path: load_config(path, list(overrides)) for path in configs}
    planned = {path: plan_repeat(cfg, seeds, out / path.stem, label=path.stem)[1] for path, cfg in cfgs.items()}
    (executor or LocalExecutor()).run([job for jobs in planned.values() for job in jobs], log=log)
    arms = []
    for path, cfg in cfgs.items():
        summary = finish_repeat(out / path.stem, planned[path])
        members = member_metrics(out / path.stem)
        per_epoch = [m["train_seconds"] / max(1, m.get("epochs") or cfg.train.epochs) for m in members.values()]
        arms.append({
            "name": path.stem, "config": str(path), "group": str(out / path.stem),
            "metrics": summary["metrics"].get(split, {}),
            "seconds_per_epoch": sum(per_epoch) / len(per_epoch) if per_epoch else None,
            **profile(cfg, load_data(cfg.data).num_classes),
        })
    rows = compare_groups([Path(a["group"]) for a in arms], split)
    result = {"study": str(folder), "seeds": list(seeds), "split": split, "arms": arms,
              "comparisons": [{"a": a, "b": b, **c.to_dict(), "verdict": v} for a, b, c, v in rows]}
    out.mkdir(parents=True, exist_ok=True)
    (out / "study.json").write_text(json.dumps(result, indent=2))
    return result

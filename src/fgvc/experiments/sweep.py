"""A grid of config values x seeds, each cell a repeat group, compared with the first cell."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Callable, Optional, Sequence

import yaml

from fgvc.config import ExperimentConfig
from fgvc.errors import ConfigError
from fgvc.experiments.compare import compare_groups
from fgvc.experiments.executors import LocalExecutor
from fgvc.experiments.groups import member_config
from fgvc.experiments.jobs import Executor
from fgvc.experiments.plan_checks import check_comparison_plan
from fgvc.experiments.repeat import finish_repeat, plan_repeat
from fgvc.groupfolder import GroupFolder


def parse_grid(specs: Sequence[str]) -> dict[str, list]:
    """['loss.name=ce,focal', 'optim.lr=0.1,0.01'] -> {'loss.name': ['ce', 'focal'], 'optim.lr': [0.1, 0.01]}."""
    grid = {}
    for spec in specs:
        key, sep, raw = spec.partition("=")
        if not sep or not raw:
            raise ConfigError(f"--grid {spec!r}: expected KEY=V1,V2,..., e.g. --grid loss.name=ce,focal")
        grid[key.strip()] = [yaml.safe_load(v) for v in raw.split(",")]
    return grid


def cell_name(assignment: dict) -> str:
    text = "+".join(f"{k}={v}" for k, v in assignment.items())
    return re.sub(r"[^A-Za-z0-9_.=+-]", "_", text)


def sweep(cfg: ExperimentConfig, grid: dict[str, list], seeds: Sequence[int], sweep_dir: Optional[Path] = None,
          split: str = "test", progress: bool = False, log: Callable[[str], None] = print,
          executor: Optional[Executor] = None) -> dict:
    """Run every cell of the grid over ``seeds`` (same seeds everywhere: comparisons are paired).
    All cells' runs go to ``executor`` at once, so a Ray cluster trains them side by side."""
    sweep_dir = Path(sweep_dir or Path(cfg.output.dir) / f"{cfg.output.name or 'run'}-sweep")
    keys = list(grid)
    cells = [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]
    cell_cfgs = {cell_name(a): member_config(cfg, [f"{k}={json.dumps(v)}" for k, v in a.items()]) for a in cells}
    if len(cells) > 1:  # the cells are compared at the end: everything that needs is checked first
        check_comparison_plan(cfg, seeds, split, "fgvc sweep")
    groups, jobs = [], {}
    for name, cell_cfg in cell_cfgs.items():
        group, jobs[group] = plan_repeat(cell_cfg, seeds, sweep_dir / name, label=name)
        groups.append(group)
    (executor or LocalExecutor()).run([job for cell in jobs.values() for job in cell], progress, log)
    for group in groups:
        finish_repeat(group, jobs[group])
    rows = compare_groups(groups, split) if len(groups) > 1 else []
    result = {"grid": grid, "seeds": list(seeds), "cells": [str(g) for g in groups],
              "comparisons": [{"a": a, "b": b, **c.to_dict(), "verdict": v} for a, b, c, v in rows]}
    GroupFolder(sweep_dir).sweep_file.write_text(json.dumps(result, indent=2))
    return result

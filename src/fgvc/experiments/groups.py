"""A group of runs in one folder (seeds, folds, or a sweep cell): run or reuse members, summarise them.

GROUP/ (:class:`fgvc.runfolder.GroupFolder`)
  group.json      kind, the base config, and each member's settings (seeds drawn at random are kept here)
  <member>/       an ordinary run folder (seed-3/, fold-0/, ...)
  summary.json    per split and metric: mean, sample std, variance, min/max, CI over the members
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from fgvc.config import ExperimentConfig, apply_overrides, load_config, validate_config
from fgvc.errors import FgvcError
from fgvc.evaluate.metrics import headline
from fgvc.evaluate.stats import describe, few_runs_warning
from fgvc.groupfolder import GroupFolder
from fgvc.launcher import secondary_rank
from fgvc.runfolder import RunFolder
from fgvc.train.run import resume, train

SPLITS = ("val", "test")
# config keys that say where a run writes or how it is fed, not what it learns: a member is reused
# even when they differ (a group moved to another folder, more loader workers, another logger)
NOT_COMPARED = ("output", "executor", "data.num_workers", "data.cache_dir", "data.cache_limit", "train.loggers",
                "train.mlflow_uri", "train.keep_cpu_memory")


def member_config(base: ExperimentConfig, overrides: list[str]) -> ExperimentConfig:
    raw = base.model_dump(mode="json")
    return validate_config(apply_overrides(raw, overrides), source="member config")


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_differences(cfg: ExperimentConfig, run_dir: Path) -> list[tuple[str, Any, Any]]:
    """(key, value in run_dir's config.yaml, value in ``cfg``) for every key that changes what is learnt."""
    theirs = _flat(load_config(RunFolder(run_dir).config_file).model_dump(mode="json"))
    ours = _flat(cfg.model_dump(mode="json"))
    compared = [k for k in dict.fromkeys([*ours, *theirs])
                if not any(k == skip or k.startswith(skip + ".") for skip in NOT_COMPARED)]
    return [(k, theirs.get(k), ours.get(k)) for k in compared if theirs.get(k) != ours.get(k)]


def check_member_config(cfg: ExperimentConfig, run_dir: Path) -> None:
    """Refuse to reuse or resume a member that was trained with another config (a group folder given
    to another recipe would otherwise mix two recipes' runs in one summary). A member with neither
    metrics nor a checkpoint has nothing to reuse and is not checked."""
    folder = RunFolder(run_dir)
    if not folder.config_file.is_file() or not (folder.metrics_file.is_file() or folder.last_checkpoint.is_file()):
        return
    drawn = recorded_draw_seed(folder)
    diffs = config_differences(cfg, run_dir)
    if drawn is not None and drawn == cfg.data.limit_draw_seed:  # data.limit_seed set to the seed it drew with
        diffs = [d for d in diffs if d[0] != "data.limit_seed"]
    if diffs:
        key, theirs, ours = diffs[0]
        more = f" and {len(diffs) - 1} more key(s)" if len(diffs) > 1 else ""
        raise FgvcError(f"{run_dir} was trained with another config ({key}: {theirs!r} there, {ours!r} now{more}); "
                        f"a member is reused only with its own config: choose another --out, or delete {run_dir} "
                        "to train it again")
    # a folder made by an older fgvc drew its k-shot images with data.split_seed, and its config.yaml
    # reads data.limit_seed as null exactly like a new one: only metrics.json tells the two apart
    if drawn is not None and cfg.data.limit_per_class is not None and drawn != cfg.data.limit_draw_seed:
        raise FgvcError(f"{run_dir} drew its data.limit_per_class images with seed {drawn} ({folder.METRICS}), "
                        f"the config now draws them with seed {cfg.data.limit_draw_seed}; set data.limit_seed="
                        f"{drawn} to reuse its draw, or choose another --out, or delete {run_dir} to train it again")


def recorded_draw_seed(folder: RunFolder) -> Optional[int]:
    """The seed metrics.json says the run's data.limit_per_class images were drawn with (None: not recorded)."""
    try:
        drawn = json.loads(folder.metrics_file.read_text()).get("limit_per_class", {}).get("seed")
    except (OSError, ValueError, AttributeError):  # no metrics.json (a killed run), or not one fgvc wrote
        return None
    return drawn if isinstance(drawn, int) else None


def run_member(cfg: ExperimentConfig, run_dir: Path, progress: bool = False,
               log: Callable[[str], None] = print, label: Optional[str] = None,
               callbacks: Sequence = (), evaluate: Sequence[str] = ("val", "test")) -> dict[str, Any]:
    """Reuse a finished member, resume a killed one from its last checkpoint, or train it.
    ``label`` names the member in messages (default: its folder name); ``callbacks`` and ``evaluate``
    go to the training (a search's trials report to Ray Tune and are evaluated on val only)."""
    folder, label = RunFolder(run_dir), label or Path(run_dir).name
    check_member_config(cfg, run_dir)
    if secondary_rank():  # a DDP rank: it joins what rank 0 does with the member, and decides nothing
        return _run_member(cfg, folder, label, progress, log, callbacks, evaluate, delete=False)
    # two processes on one group (two `fgvc repeat`, two studies sharing an arm): one trains the member,
    # the other waits for it and then reuses it, instead of deleting the folder the first trains in
    with folder.reserved(lambda pid: log(f"{label}: another process{f' (pid {pid})' if pid else ''} is training "
                                         "it; waiting to reuse it")):
        check_member_config(cfg, run_dir)
        return _run_member(cfg, folder, label, progress, log, callbacks, evaluate, delete=True)


def _run_member(cfg: ExperimentConfig, folder: RunFolder, label: str, progress: bool, log: Callable[[str], None],
                callbacks: Sequence, evaluate: Sequence[str], delete: bool) -> dict[str, Any]:
    run_dir = folder.path
    if folder.metrics_file.is_file():
        log(f"{label}: finished earlier, reused")
        return folder.metrics()
    if folder.last_checkpoint.is_file():
        log(f"{label}: resuming from its last checkpoint")
        return resume(run_dir, progress=progress, callbacks=callbacks, evaluate=evaluate).metrics
    if run_dir.exists() and delete:
        with folder.exclusive():  # a member another process is training is never deleted under it
            shutil.rmtree(run_dir)  # started but never finished an epoch: nothing to keep
    log(f"{label}: training")
    return train(cfg, run_dir=run_dir, progress=progress, callbacks=callbacks, evaluate=evaluate).metrics


def write_group(group_dir: Path, kind: str, base: ExperimentConfig, members: dict[str, dict]) -> None:
    try:
        group_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FgvcError(f"cannot make the group folder {group_dir}: {exc.strerror or exc}; "
                        "choose another --out or output.dir") from None
    GroupFolder(group_dir).group_file.write_text(json.dumps(
        {"kind": kind, "config": base.model_dump(mode="json"), "members": members}, indent=2))


def read_group(group_dir: Path) -> dict[str, Any]:
    return GroupFolder(group_dir).read()


def member_metrics(group_dir: Path) -> dict[str, dict[str, Any]]:
    """metrics.json of every finished member, by member name."""
    group = read_group(group_dir)
    found = {}
    for name in group["members"]:
        folder = GroupFolder(group_dir).member(name)
        if folder.metrics_file.is_file():
            found[name] = folder.metrics()
    return found


def values(group_dir: Path, split: str, metric: str, keys: Optional[Sequence[int]] = None) -> dict[int, float]:
    """{seed or fold: value} of one metric over a group's finished members (those of ``keys`` only, if given);
    one clear error when ``group_dir`` is not a group."""
    read_group(group_dir)
    return GroupFolder(group_dir).metric_values(split, metric, keys)


def summarize_group(group_dir: Path, confidence: float = 0.95, bootstrap: int = 0,
                    only: Optional[list[str]] = None) -> dict[str, Any]:
    """Aggregate the members' metrics (per split and metric) and write summary.json."""
    group = read_group(group_dir)
    metrics = member_metrics(group_dir)
    names = [n for n in (only or list(group["members"])) if n in metrics]
    summary: dict[str, Any] = {"group": str(group_dir), "kind": group["kind"], "members": names,
                               "keys": {n: GroupFolder.pairing_key(group["members"][n]) for n in names}, "metrics": {}}
    for split in SPLITS:
        per_metric: dict[str, list[float]] = {}
        for name in names:
            for key, value in headline(metrics[name].get(split, {})).items():
                if key != "n":
                    per_metric.setdefault(key, []).append(float(value))
        if per_metric:
            summary["metrics"][split] = {
                key: describe(vals, confidence, bootstrap, metric=key).to_dict() for key, vals in per_metric.items()
            }
    seconds = [float(metrics[n]["train_seconds"]) for n in names if "train_seconds" in metrics[n]]
    if seconds:
        summary["metrics"]["time"] = {"train_seconds": describe(seconds, confidence, metric="train_seconds").to_dict()}
    warning = few_runs_warning(len(names), "folds" if group.get("kind") == "crossval" else "seeds")
    if warning:
        summary["warning"] = warning
    GroupFolder(group_dir).summary_file.write_text(json.dumps(summary, indent=2))
    return summary

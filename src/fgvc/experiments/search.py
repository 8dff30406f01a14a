"""A recipe search that ends in a confirmed winner: Ray Tune runs the trials, Optuna's TPE sampler
chooses them, ASHA stops the weak ones early on the validation metric each epoch reports. The
search never looks at the test split. Then the best config and the starting one are repeated over
the same seeds and compared (a paired verdict): a winner lucky on one seed does not count.

SEARCH/
  search.json     the space, every trial (parameters, per-epoch curve, completed or pruned when), the best
  trials/<id>/    each trial's run folder (evaluated on val only)
  tune/           Ray Tune's own state (a killed search is restored from it)
  best.yaml       the starting config with the best trial's parameters
  confirm/start/, confirm/best/   repeat groups over the same seeds; their comparison is the verdict
  report.html
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional, Sequence

from fgvc.config import ExecutorConfig, ExperimentConfig, validate_config
from fgvc.config.train import reported_metrics
from fgvc.errors import FgvcError
from fgvc.experiments.compare import compare_groups
from fgvc.experiments.executors import make_executor
from fgvc.experiments.groups import member_config, run_member
from fgvc.experiments.jobs import Log
from fgvc.experiments.plan_checks import check_comparison_plan, require_labelled_split
from fgvc.experiments.repeat import finish_repeat, plan_repeat
from fgvc.experiments.search_space import Dimension, load_space, overrides_for
from fgvc.groupfolder import GroupFolder
from fgvc.registry import ENGINES
from fgvc.runfolder import RunFolder


def tune_key(metric: str) -> str:
    return metric.replace("/", "_")


def _reporter(metric: str):
    """A Lightning callback that reports the epoch's validation metrics to Ray Tune (ASHA decides on them)."""
    import lightning as L
    from ray import tune

    class ReportToTune(L.Callback):
        def on_train_epoch_end(self, trainer, pl_module) -> None:
            epoch = trainer.current_epoch + 1
            if epoch >= trainer.max_epochs:  # the last epoch is reported once the run folder is complete
                return
            values = {tune_key(k): float(v) for k, v in trainer.callback_metrics.items()
                      if k.startswith("val/") and v.numel() == 1}
            if tune_key(metric) in values:
                tune.report({**values, "epoch": epoch})

    return ReportToTune()


def run_trial(params: dict, *, base: dict, trials_dir: str, cwd: str, cpus: float, metric: str) -> None:
    """One trial in a Ray worker: the base config with ``params``, trained (or resumed after a worker
    died) into trials/<trial id>/, evaluated on val only."""
    from ray import tune

    from fgvc.experiments.ray_executor import enter_worker

    enter_worker(cwd, cpus)
    name = GroupFolder.trial_member(tune.get_context().get_trial_id())
    cfg = member_config(validate_config(base, source="search base"),
                        overrides_for(params) + [f"output.dir={trials_dir}", f"output.name={name}"])
    # reused, resumed after its worker died, or trained; the metrics are the best checkpoint's
    metrics = run_member(cfg, Path(trials_dir) / name, log=lambda _: None, callbacks=[_reporter(metric)],
                         evaluate=("val",))
    val = metrics.get("val", {})
    tune.report({tune_key(f"val/{k}"): float(v) for k, v in val.items() if isinstance(v, (int, float))}
                | {"epoch": cfg.train.epochs})


def _trial_records(result_grid, trials_dir: Path, dimensions: Sequence[Dimension], metric: str,
                   ) -> list[dict[str, Any]]:
    key = tune_key(metric)
    records = []
    for result in result_grid:
        trial_id = (result.metrics or {}).get("trial_id") or Path(result.path).name.split("_")[-3]
        history = result.metrics_dataframe
        curve = ([{"epoch": int(e), "value": float(v)} for e, v in zip(history["epoch"], history[key])]
                 if history is not None and key in history else [])
        epochs = curve[-1]["epoch"] if curve else 0
        folder = RunFolder(trials_dir / GroupFolder.trial_member(trial_id))
        status = "failed" if result.error else "completed" if folder.metrics_file.is_file() else "pruned"
        record = {"trial": trial_id, "params": {d.key: result.config.get(d.key) for d in dimensions},
                  "status": status, "epochs": epochs, "curve": curve, "run_dir": str(folder.path)}
        if status == "completed" and folder.metrics_file.is_file():
            record["value"] = folder.metrics().get("val", {}).get(metric.split("/", 1)[-1])
        elif curve:
            record["value"] = curve[-1]["value"]
        if result.error:
            record["error"] = str(result.error).strip().splitlines()[-1]
        if status == "pruned" and folder.path.is_dir():
            folder.set_status("stopped", f"pruned by ASHA after epoch {epochs} ({metric} {record.get('value')})")
        records.append(record)
    return records


def importances(records: Sequence[dict], dimensions: Sequence[Dimension], mode: str) -> dict[str, float]:
    """Optuna's parameter importances (fANOVA) over the trials that reported a value."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    usable = [r for r in records if r.get("value") is not None]
    if len(usable) < 2 or len(dimensions) < 2:
        return {}
    distributions = {}
    for d in dimensions:
        if d.kind == "choice":
            distributions[d.key] = CategoricalDistribution(list(d.values))
        elif d.kind == "int":
            distributions[d.key] = IntDistribution(int(d.values[0]), int(d.values[1]))
        else:
            distributions[d.key] = FloatDistribution(float(d.values[0]), float(d.values[1]), log=d.kind == "loguniform")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize" if mode == "max" else "minimize")
    for r in usable:
        study.add_trial(optuna.trial.create_trial(params=r["params"], distributions=distributions,
                                                  value=float(r["value"])))
    try:
        return {k: round(float(v), 4) for k, v in optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0)).items()}
    except (RuntimeError, ValueError):
        return {}


def search(cfg: ExperimentConfig, space_file: Path, trials: int, search_dir: Optional[Path] = None,
           budget_epochs: Optional[int] = None, seeds: Sequence[int] = (0, 1, 2),
           settings: Optional[ExecutorConfig] = None, metric: Optional[str] = None, seed: int = 0,
           log: Log = print, split: str = "test") -> dict[str, Any]:
    """Search ``space_file`` around ``cfg`` with ``trials`` trials (each at most ``budget_epochs``),
    write best.yaml, then confirm it against ``cfg`` over ``seeds`` on ``split``. Everything the end
    needs (the metric, the seeds, a labelled split to confirm on) is checked before Ray starts."""
    from fgvc.experiments.ray_executor import ray_session

    if not ENGINES.info(cfg.train.engine).get("reports_epochs"):
        raise FgvcError(f"fgvc search tunes runs trained epoch by epoch; train.engine: {cfg.train.engine} has no "
                        "epochs to prune (the probe already chooses its C on val: probe.c: auto)")
    if len(seeds) < 3:
        raise FgvcError(f"the confirmation needs at least 3 seeds (got {len(seeds)}): one lucky seed is no win")
    metric = metric or cfg.train.monitor
    if not metric.startswith("val/"):
        raise FgvcError(f"--metric {metric}: a search chooses on the validation split only (e.g. val/top1)")
    known = [m for m in reported_metrics(cfg.eval.top_k) if m.startswith("val/")]
    if metric not in known:
        raise FgvcError(f"--metric {metric}: not a metric the trials report; choose one of: {', '.join(known)}")
    splits = check_comparison_plan(cfg, seeds, split, "fgvc search's confirmation")
    require_labelled_split(cfg, "val", "fgvc search (it chooses on val)", splits)
    mode = "min" if "loss" in metric else "max"
    if budget_epochs:
        cfg = member_config(cfg, [f"train.epochs={budget_epochs}"])
    dimensions = load_space(space_file, cfg)
    settings = settings or ExecutorConfig(name="ray")
    search_dir = Path(search_dir or Path(cfg.output.dir) / f"{cfg.output.name or 'run'}-search").resolve()
    search_dir.mkdir(parents=True, exist_ok=True)
    folder = GroupFolder(search_dir)
    record_file = folder.search_file
    record = json.loads(record_file.read_text()) if record_file.is_file() else {}
    if record.get("trials") and len(record["trials"]) >= trials:
        log(f"search: {len(record['trials'])} trials finished earlier, reused")
    else:
        with ray_session(settings):
            record = _tune(cfg, dimensions, trials, search_dir, settings, metric, mode, seed, log)
        record_file.write_text(json.dumps(record, indent=2))
    done = [r for r in record["trials"] if r["status"] == "completed" and r.get("value") is not None]
    if not done:
        raise FgvcError(f"no trial of {search_dir} completed; see {record_file.name} for their errors")
    best = (max if mode == "max" else min)(done, key=lambda r: r["value"])
    best_cfg = member_config(cfg, overrides_for(best["params"]))
    folder.best_config.write_text(best_cfg.to_yaml())
    record["best"] = best
    log(f"best trial {best['trial']}: {metric} {best['value']:.4f} with "
        + ", ".join(f"{k}={v}" for k, v in best["params"].items()))

    # confirmation: the start and the best over the same seeds, one executor for both groups
    groups, jobs = {}, []
    for name, arm, group in ((folder.START, cfg, folder.confirm_start), (folder.BEST, best_cfg, folder.confirm_best)):
        groups[name], arm_jobs = plan_repeat(arm, seeds, group, label=name)
        jobs.append(arm_jobs)
    make_executor(settings).run([j for a in jobs for j in a], log=log)
    for name, arm_jobs in zip(groups, jobs):
        finish_repeat(groups[name], arm_jobs)
    record["confirmation"] = confirmation(groups[folder.START], groups[folder.BEST], metric.split("/", 1)[-1], split)
    record["folder"] = str(search_dir)
    record["importances"] = importances(record["trials"], dimensions, mode)
    record_file.write_text(json.dumps(record, indent=2))
    from fgvc.report.search_report import search_report

    search_report(search_dir)
    return record


def confirmation(start: Path, best: Path, metric: str = "top1", split: str = "test") -> dict[str, Any]:
    """The paired comparison of the best config against the start on ``split``, as one sentence."""
    from fgvc.evaluate.stats import b_is_better, significant

    rows = [row for row in compare_groups([start, best], split, [metric])]
    _, _, comparison, text = rows[0]
    points = comparison.diff * 100
    ci = f"95 % CI [{comparison.ci_low * 100:+.2f}, {comparison.ci_high * 100:+.2f}]"
    if significant(comparison) and b_is_better(comparison):
        sentence = f"search's best beats the start by {points:+.2f} points of {split} {metric}, {ci}"
    elif significant(comparison):
        sentence = f"search's best is worse than the start by {-points:.2f} points of {split} {metric}, {ci}"
    else:
        sentence = (f"search's best does not beat the start: {points:+.2f} points of {split} {metric}, {ci} "
                    "(not significant)")
    return {"metric": metric, **comparison.to_dict(), "verdict": sentence, "detail": text}


def _tune(cfg: ExperimentConfig, dimensions: Sequence[Dimension], trials: int, search_dir: Path,
          settings: ExecutorConfig, metric: str, mode: str, seed: int, log: Log) -> dict[str, Any]:
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    trainable = tune.with_resources(
        tune.with_parameters(run_trial, base=cfg.model_dump(mode="json"), trials_dir=str(GroupFolder(search_dir).trials_dir),
                             cwd=os.getcwd(), cpus=settings.cpus_per_trial, metric=metric),
        {"cpu": settings.cpus_per_trial, "gpu": settings.gpus_per_trial})
    tune_dir = GroupFolder(search_dir).tune_dir
    if tune.Tuner.can_restore(str(tune_dir)):
        log(f"search: going on from {tune_dir}")
        tuner = tune.Tuner.restore(str(tune_dir), trainable, resume_unfinished=True, resume_errored=True)
    else:
        tuner = tune.Tuner(
            trainable,
            param_space={d.key: d.to_tune() for d in dimensions},
            tune_config=tune.TuneConfig(
                search_alg=OptunaSearch(seed=seed), num_samples=trials, metric=tune_key(metric), mode=mode,
                scheduler=ASHAScheduler(time_attr="epoch", max_t=cfg.train.epochs, grace_period=1,
                                        reduction_factor=2)),
            run_config=tune.RunConfig(storage_path=str(search_dir), name=tune_dir.name, verbose=0,
                                      failure_config=tune.FailureConfig(max_failures=settings.max_retries)),
        )
    log(f"search: {trials} trials of at most {cfg.train.epochs} epochs ({settings.cpus_per_trial:g} CPU, "
        f"{settings.gpus_per_trial:g} GPU each); TPE chooses, ASHA prunes on {metric}")
    grid = tuner.fit()
    records = _trial_records(grid, GroupFolder(search_dir).trials_dir, dimensions, metric)
    pruned = sum(r["status"] == "pruned" for r in records)
    log(f"search: {len(records)} trials, {pruned} pruned early")
    return {"space": {d.key: d.describe() for d in dimensions}, "metric": metric, "mode": mode,
            "budget_epochs": cfg.train.epochs, "trials": records}

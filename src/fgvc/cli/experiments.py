"""fgvc commands: repeat, crossval, compare, sweep, ensemble, report, study, search, wise-ft."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from fgvc.cli._common import (
    AddressOption,
    ConfigArg,
    CpusOption,
    ExecutorOption,
    GpusOption,
    SetOption,
    _print_metrics,
    _print_summary,
    app,
    console,
    friendly_errors,
    make_group_executor,
)
from fgvc.config import load_config
from fgvc.errors import FgvcError


@app.command("repeat")
@friendly_errors
def repeat_command(
    config: Path = ConfigArg,
    set_: List[str] = SetOption,
    seeds: str = typer.Option("5", help="a count (from the config's seed on) or a list: 1,7,42 (one seed: 7,)"),
    random_seeds: bool = typer.Option(False, help="draw the seeds at random (kept in group.json)"),
    out: Optional[Path] = typer.Option(None, help="group folder (default RUN_DIR-repeat)"),
    bootstrap: int = typer.Option(0, help="bootstrap resamples for the CI (0: Student t)"),
    vary: str = typer.Option("seed", help="config keys set to each member's seed, e.g. "
                                          "seed,data.split_seed,data.test_split_seed (other splits too)"),
    executor: Optional[str] = ExecutorOption,
    address: Optional[str] = AddressOption,
    cpus_per_trial: Optional[float] = CpusOption,
    gpus_per_trial: Optional[float] = GpusOption,
) -> None:
    """Train the config once per seed; mean, std, min/max and a 95% CI of every metric."""
    cfg = load_config(config, set_)  # checked before the heavy imports
    from fgvc.experiments.repeat import draw_seeds, parse_seeds, repeat

    seed_list = draw_seeds(int(seeds)) if random_seeds else parse_seeds(seeds, cfg.seed)
    keys = [k.strip() for k in vary.split(",") if k.strip()]
    runner = make_group_executor(cfg, executor, address, cpus_per_trial, gpus_per_trial)
    summary = repeat(cfg, seed_list, out, bootstrap=bootstrap, log=console.print, vary=keys, executor=runner)
    for split in ("val", "test"):
        if split in summary["metrics"]:
            _print_summary(summary, split)
    console.print(f"group folder: {summary['group']}")


@app.command("crossval")
@friendly_errors
def crossval_command(
    config: Path = ConfigArg,
    set_: List[str] = SetOption,
    folds: int = typer.Option(5, min=2, help="number of stratified folds"),
    retrain: bool = typer.Option(False, help="finally train on all folds together"),
    out: Optional[Path] = typer.Option(None, help="group folder (default RUN_DIR-cvK)"),
    executor: Optional[str] = ExecutorOption,
    address: Optional[str] = AddressOption,
    cpus_per_trial: Optional[float] = CpusOption,
    gpus_per_trial: Optional[float] = GpusOption,
) -> None:
    """Stratified k-fold cross-validation: per-fold and aggregated metrics."""
    cfg = load_config(config, set_)  # checked before the heavy imports
    from fgvc.experiments.crossval import crossval

    runner = make_group_executor(cfg, executor, address, cpus_per_trial, gpus_per_trial)
    summary = crossval(cfg, folds, out, retrain=retrain, log=console.print, executor=runner)
    _print_summary(summary, "val")
    if "test" in summary["metrics"]:  # every fold's model on the untouched test split
        _print_summary(summary, "test")
    if "final" in summary and "test" in summary["final"]:
        _print_metrics("retrained on all folds: test metrics", summary["final"]["test"])
    console.print(f"group folder: {summary['group']}")


@app.command("compare")
@friendly_errors
def compare_command(
    groups: List[Path] = typer.Argument(..., help="run groups (folders from repeat / crossval / sweep)"),
    split: str = typer.Option("test", help="val or test"),
    metric: List[str] = typer.Option([], help="metrics to compare (default top1, f1_macro, auroc_macro, ece)"),
    out: Optional[Path] = typer.Option(None, help="also write the table and verdicts to this Markdown file"),
) -> None:
    """Difference of means with CI and a paired (or Welch) test for each group against the first."""
    from fgvc.experiments.compare import compare_groups
    from fgvc.report.tables import compare_markdown, comparison_cells

    rows = compare_groups(groups, split, metric or None)
    table = Table(title=f"{split} split: B - A (points for proportions, as in the verdicts)")
    for column in ("A", "B", "metric", "mean A", "mean B", "B - A", "95% CI", "test", "p"):
        table.add_column(column)
    for a, b, c, _ in rows:
        table.add_row(a, b, c.metric, *comparison_cells(c))
    console.print(table)
    for *_, text in rows:
        console.print(text, highlight=False)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(compare_markdown(rows, split))
        console.print(f"wrote {out}")


@app.command("sweep")
@friendly_errors
def sweep_command(
    config: Path = ConfigArg,
    set_: List[str] = SetOption,
    grid: List[str] = typer.Option(..., help="KEY=V1,V2,... (repeatable: the grid is their product)"),
    seeds: str = typer.Option("3", help="a count (from the config's seed on) or a list: 1,7,42; the same in "
                                        "every cell"),
    out: Optional[Path] = typer.Option(None, help="sweep folder (default RUN_DIR-sweep)"),
    split: str = typer.Option("test", help="split the comparison uses"),
    executor: Optional[str] = ExecutorOption,
    address: Optional[str] = AddressOption,
    cpus_per_trial: Optional[float] = CpusOption,
    gpus_per_trial: Optional[float] = GpusOption,
) -> None:
    """Run a grid of config values x seeds and compare every cell with the first."""
    cfg = load_config(config, set_)  # checked before the heavy imports
    from fgvc.experiments.repeat import parse_seeds
    from fgvc.experiments.sweep import parse_grid, sweep

    runner = make_group_executor(cfg, executor, address, cpus_per_trial, gpus_per_trial)
    result = sweep(cfg, parse_grid(grid), parse_seeds(seeds, cfg.seed), out, split, log=console.print,
                   executor=runner)
    for row in result["comparisons"]:
        console.print(row["verdict"], highlight=False)


@app.command("ensemble")
@friendly_errors
def ensemble_command(
    runs: List[Path] = typer.Argument(..., help="run folders to combine"),
    split: str = typer.Option("test", help="val or test"),
    tta: str = typer.Option("", help="test-time views: flip, d4 (flips and 90-degree rotations), crops; comma-separated"),
    combine: str = typer.Option("probs", help="average probs or logits"),
    out: Optional[Path] = typer.Option(None, help="folder for ensemble.json and predictions"),
) -> None:
    """Average the predictions of several runs (with TTA); ensemble metrics vs the members' mean."""
    from fgvc.evaluate.ensemble import ensemble_runs

    views = [v.strip() for v in tta.split(",") if v.strip()]
    unknown = sorted(set(views) - {"flip", "d4", "crops"})
    if unknown or combine not in ("probs", "logits"):
        raise FgvcError(f"--tta takes flip, d4 and/or crops (got {unknown}); --combine takes probs or logits")
    result = ensemble_runs(runs, split, views, combine, out)
    table = Table(title=f"{len(runs)} runs on {split}, tta={views or 'none'}, averaging {combine}")
    for column in ("metric", "members' mean", "ensemble"):
        table.add_column(column, justify="right" if column != "metric" else "left")
    for key, value in result["members_mean"].items():
        table.add_row(key, f"{value:.4f}", f"{result['ensemble'][key]:.4f}")
    console.print(table)
    saved = sum(m.get("predictions") == "saved" for m in result["members"])
    if saved:
        from fgvc.runfolder import RunFolder

        console.print(f"{saved} of {len(runs)} runs read from their {RunFolder.PREDICTIONS.format(split=split)} (best checkpoint, the same "
                      "test-time views); the others predicted again", highlight=False)
    d = result["diversity"]
    if d["pairs"]:
        correlation = f"{d['error_correlation']:.3f}" if d["error_correlation"] is not None else "undefined"
        console.print(f"diversity over {d['pairs']} member pairs: disagreement {d['disagreement']:.3f}, "
                      f"error correlation {correlation}", highlight=False)


@app.command("report")
@friendly_errors
def report_command(
    paths: List[Path] = typer.Argument(..., help="a run, group, study, sweep, search or ensemble folder; with "
                                                 "--format latex several groups are a compare (each vs the first)"),
    format_: str = typer.Option("html", "--format", help="html (report.html) or latex (tables, figures, a paper)"),
    ci_brackets: bool = typer.Option(False, help="latex: print the CI by its bounds (low, high) instead of +- half its width"),
    out: Optional[Path] = typer.Option(None, help="latex: folder for tables/ and figures/ (default PATH/latex, "
                                                  "or --paper)"),
    paper: Optional[Path] = typer.Option(None, help="latex: also write a compilable paper, PAPER/main.tex"),
    split: str = typer.Option("test", help="latex: the split the tables and figures show"),
) -> None:
    """(Re)build report.html of a run or a group, or export LaTeX tables, PDF figures and a paper."""
    if format_ not in ("html", "latex"):
        raise FgvcError(f"--format {format_!r}: choose html or latex")
    if format_ == "html":
        if len(paths) > 1 or ci_brackets or out or paper:
            raise FgvcError("--format html takes one folder and no --ci-brackets, --out or --paper; "
                            "add --format latex for those")
        from fgvc.report.build import build_report

        console.print(f"wrote {build_report(paths[0])}")
        return
    from fgvc.report.paper import export_latex

    export = export_latex(paths, out, ci_brackets, paper, split)
    console.print(f"wrote {len(export.tables)} tables and {len(export.figures)} figures to {export.out}", highlight=False)
    if export.paper:
        console.print(f"paper: {export.paper} (cd {export.paper.parent} && pdflatex {export.paper.name})",
                      highlight=False)


@app.command("study")
@friendly_errors
def study_command(
    folder: Path = typer.Argument(..., help="a folder of configs (e.g. configs/study_cnn_vs_vit), or of a "
                                            "questions.yaml plan (e.g. configs/study_tricks)"),
    set_: List[str] = SetOption,
    seeds: Optional[str] = typer.Option(None, help="a count or a list: 1,7,42; the same for every arm. A count "
                                                   "starts at the plan's first seed (questions.yaml) or at the "
                                                   "first config's seed (a folder of configs), as repeat's starts "
                                                   "at the config's; default: the plan's seeds, or 3"),
    question: List[str] = typer.Option([], help="questions.yaml plans: only this question (repeatable)"),
    out: Optional[Path] = typer.Option(None, help="study folder (default runs/<folder name>)"),
    split: str = typer.Option("test", help="split the comparison uses"),
    executor: Optional[str] = ExecutorOption,
    address: Optional[str] = AddressOption,
    cpus_per_trial: Optional[float] = CpusOption,
    gpus_per_trial: Optional[float] = GpusOption,
) -> None:
    """Run every config of a folder (or every question of its questions.yaml) over the same seeds; metrics
    with CIs, parameters, time, memory, paired verdicts."""
    from fgvc.experiments.repeat import parse_seeds
    from fgvc.experiments.study import base_seed, has_questions, study, study_folder
    from fgvc.models.summary import human_bytes
    from fgvc.report.tables import study_markdown

    runner = make_group_executor(None, executor, address, cpus_per_trial, gpus_per_trial)
    questions = has_questions(folder)
    result = study(folder, parse_seeds(seeds, base_seed(folder, set_)) if seeds else None, out, split, question, set_,
                   log=console.print, executor=runner)
    if questions:
        console.print(study_markdown(result, study_folder(folder, out)), highlight=False, markup=False)
        return
    table = Table(title=f"study {folder} on {split} ({len(result['seeds'])} seeds, mean and 95% CI)")
    for column in ("arm", "top1", "95% CI", "f1_macro", "trainable params", "s / epoch", "activations / image"):
        table.add_column(column, justify="left" if column == "arm" else "right")
    for arm in result["arms"]:
        top1, f1 = arm["metrics"].get("top1", {}), arm["metrics"].get("f1_macro", {})
        ci = f"[{top1['ci_low']:.4f}, {top1['ci_high']:.4f}]" if top1.get("ci_low") is not None else "-"
        table.add_row(arm["name"], f"{top1.get('mean', float('nan')):.4f}", ci, f"{f1.get('mean', float('nan')):.4f}",
                      f"{arm['trainable_params']:,}", f"{arm['seconds_per_epoch'] or 0:.1f}",
                      human_bytes(arm["activation_bytes_per_image"]))
    console.print(table)
    for row in result["comparisons"]:
        console.print(row["verdict"], highlight=False)


@app.command("search")
@friendly_errors
def search_command(
    config: Path = ConfigArg,
    set_: List[str] = SetOption,
    space: Path = typer.Option(..., help="SPACE.yaml: config keys and distributions, e.g. "
                                         "optim.lr: {loguniform: [1.0e-4, 1.0e-2]}"),
    trials: int = typer.Option(16, min=1, help="number of trials"),
    budget_epochs: Optional[int] = typer.Option(None, min=1, help="epochs per trial (ASHA's maximum); "
                                                                  "default train.epochs"),
    seeds: str = typer.Option("3", help="confirmation seeds: a count (>= 3, from the config's seed on) or a "
                                        "list: 1,7,42"),
    metric: Optional[str] = typer.Option(None, help="validation metric to choose by (default train.monitor)"),
    split: str = typer.Option("test", help="split the confirmation compares on (val where the data set has no "
                                           "labelled test split)"),
    out: Optional[Path] = typer.Option(None, help="search folder (default RUN_DIR-search)"),
    address: Optional[str] = AddressOption,
    cpus_per_trial: Optional[float] = CpusOption,
    gpus_per_trial: Optional[float] = GpusOption,
) -> None:
    """Ray Tune search (Optuna TPE, ASHA pruning on val), then the best vs the start over the same seeds."""
    cfg = load_config(config, set_)  # checked before the heavy imports
    from fgvc.experiments.executors import executor_settings
    from fgvc.experiments.repeat import parse_seeds
    from fgvc.experiments.search import search

    settings = executor_settings(cfg, "ray", address, cpus_per_trial, gpus_per_trial)
    record = search(cfg, space, trials, out, budget_epochs, parse_seeds(seeds, cfg.seed), settings, metric,
                    log=console.print, split=split)
    console.print(record["confirmation"]["verdict"], highlight=False)
    console.print(f"search folder: {record['folder']} (best.yaml, report.html)")


@app.command("wise-ft")
@friendly_errors
def wise_ft_command(
    run: Path = typer.Argument(..., help="a finished fine-tune of a CLIP tower with model.head_init: zero_shot"),
    alphas: str = typer.Option("0:1:0.1", help="mixing weights to try on val: 0,0.5,1 or start:stop:step; "
                                               "0 = the zero-shot model, 1 = the fine-tune"),
) -> None:
    """WiSE-FT: average the zero-shot and the fine-tuned weights, alpha chosen on val; a new run folder."""
    from fgvc.experiments.wise_ft import wise_ft
    from fgvc.models.wise_ft import parse_alphas

    result = wise_ft(run, parse_alphas(alphas), progress=True)
    console.print(f"alpha {result.metrics['wise_ft']['alpha']:g} chosen on val", highlight=False)
    if result.test:
        _print_metrics("test", result.test)
    console.print(f"run folder: {result.run_dir}", highlight=False)

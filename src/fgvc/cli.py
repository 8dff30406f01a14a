"""The ``fgvc`` command line: a thin Typer layer over the library."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Callable, List, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from fgvc.config import load_config
from fgvc.errors import FgvcError

app = typer.Typer(
    help="fgvc: fine-grained visual classification done properly.", no_args_is_help=True, add_completion=False
)
config_app = typer.Typer(help="Inspect experiment configs.", no_args_is_help=True)
data_app = typer.Typer(help="Check and look at data sets.", no_args_is_help=True)
tune_app = typer.Typer(help="Find a learning rate or the largest batch size.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(data_app, name="data")
app.add_typer(tune_app, name="tune")

console = Console()
err_console = Console(stderr=True)

ConfigArg = typer.Argument(..., help="experiment config (YAML)", exists=False)
SetOption = typer.Option([], "--set", help="override a config value: key.path=value (repeatable)")


def friendly_errors(command: Callable) -> Callable:
    """Print FgvcErrors as one clear message (no traceback) and exit with status 2."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except FgvcError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


@config_app.command("show")
@friendly_errors
def config_show(config: Path = ConfigArg, set_: List[str] = SetOption) -> None:
    """Print the resolved config (defaults filled in, overrides applied)."""
    console.print(load_config(config, set_).to_yaml(), end="", highlight=False, markup=False)


@data_app.command("verify")
@friendly_errors
def data_verify(
    config: Path = ConfigArg,
    set_: List[str] = SetOption,
    out: Optional[Path] = typer.Option(None, help="JSON report path (default: RUN_DIR/data_verify.json)"),
    strict: bool = typer.Option(False, help="exit 1 when unreadable files or cross-split duplicates are found"),
) -> None:
    """Counts per class and split, image sizes, unreadable files, duplicates across splits."""
    from fgvc.data import load_data
    from fgvc.data.verify import verify_splits

    cfg = load_config(config, set_)
    splits = load_data(cfg.data)
    total = sum(len(images) for _, images in splits.named())
    with Progress(TextColumn("verifying {task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err_console, transient=True) as bar:
        task = bar.add_task(cfg.data.name, total=total)
        report = verify_splits(splits, workers=max(1, cfg.data.num_workers), progress=lambda _s, n: bar.advance(task, n))
    _print_verify(report, cfg.data.name)
    out = out or cfg.run_dir / "data_verify.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report.to_dict(), indent=2))
    console.print(f"report written to {out}")
    if strict and not report.ok:
        raise typer.Exit(1)


def _print_verify(report, name: str) -> None:
    splits = list(report.counts)
    table = Table(title=f"{name}: images per class", show_footer=True)
    table.add_column("class", footer="total")
    for split in splits:
        table.add_column(split, justify="right", footer=str(sum(report.counts[split])))
    for index, class_name in enumerate(report.class_names):
        table.add_row(class_name, *(str(report.counts[s][index]) for s in splits))
    console.print(table)
    sizes = Table(title="image sizes (width x height)")
    for column in ("split", "min", "mean", "max", "distinct"):
        sizes.add_column(column, justify="right")
    for split, stats in report.sizes.items():
        if stats:
            sizes.add_row(
                split,
                f"{stats['width_min']:.0f} x {stats['height_min']:.0f}",
                f"{stats['width_mean']:.0f} x {stats['height_mean']:.0f}",
                f"{stats['width_max']:.0f} x {stats['height_max']:.0f}",
                f"{stats['distinct_sizes']:.0f}",
            )
    console.print(sizes)
    for split, classes in report.missing_classes.items():
        console.print(f"[yellow]{split}: no images for {len(classes)} classes: {', '.join(classes[:10])}[/]")
    if report.unreadable:
        console.print(f"[bold red]{len(report.unreadable)} unreadable images:[/]")
        for item in report.unreadable:
            console.print(f"  [{item.split}] {item.image}: {item.error}", highlight=False)
    if report.leaks:
        console.print(f"[bold red]{len(report.leaks)} images appear in more than one split (leaks):[/]")
        for dup in report.leaks[:20]:
            console.print("  " + "  ==  ".join(f"[{s}] {p}" for s, p in dup.images), highlight=False)
    if report.repeats:
        console.print(f"[yellow]{len(report.repeats)} images repeated within a split[/]")
    if report.ok:
        console.print("[green]no unreadable files, no duplicates across splits[/]")


@data_app.command("show")
@friendly_errors
def data_show(
    config: Path = ConfigArg,
    set_: List[str] = SetOption,
    out: Optional[Path] = typer.Option(None, help="PNG path (default: RUN_DIR/samples.png)"),
    count: int = typer.Option(16, min=1, max=128, help="how many images"),
    split: str = typer.Option("train", help="train, val, test or unlabelled"),
    augmented: bool = typer.Option(True, help="apply the training augmentation (else the eval transform)"),
) -> None:
    """Save a PNG grid of (augmented) samples with their labels."""
    from fgvc.data.preview import preview_config

    cfg = load_config(config, set_)
    path = preview_config(cfg, out or cfg.run_dir / "samples.png", count=count, split=split, augmented=augmented)
    console.print(f"saved {path}")


def _print_metrics(title: str, metrics: dict) -> None:
    from fgvc.evaluate.metrics import headline

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in headline(metrics).items():
        table.add_row(key, str(value) if key == "n" else f"{value:.4f}")
    console.print(table)


@app.command("train")
@friendly_errors
def train_command(
    config: Optional[Path] = typer.Argument(None, help="experiment config (YAML); omit with --resume"),
    set_: List[str] = SetOption,
    resume: Optional[Path] = typer.Option(None, "--resume", help="continue the killed run in RUN_DIR"),
    progress: bool = typer.Option(True, help="show progress bars"),
) -> None:
    """Fine-tune a model; writes a run folder with checkpoints, history, metrics and plots."""
    from fgvc.train.run import resume as resume_run
    from fgvc.train.run import train

    if resume is not None:
        result = resume_run(resume, progress=progress)
    elif config is None:
        raise FgvcError("give a CONFIG to train, or --resume RUN_DIR to continue a run")
    else:
        result = train(load_config(config, set_), progress=progress)
    for split in ("val", "test"):
        if split in result.metrics:
            _print_metrics(f"{split} metrics (best checkpoint)", result.metrics[split])
    console.print(f"run folder: {result.run_dir}")


@app.command("eval")
@friendly_errors
def eval_command(
    run_dir: Path = typer.Argument(..., help="a run folder written by fgvc train"),
    split: str = typer.Option("test", help="val or test"),
    checkpoint: str = typer.Option("best", help="best or last"),
) -> None:
    """Evaluate a trained run on a split; writes metrics_<split>.json and predictions_<split>.csv."""
    from fgvc.evaluate.runs import evaluate_split, load_trained

    metrics = evaluate_split(load_trained(run_dir, checkpoint), split)
    _print_metrics(f"{split} metrics", metrics)


@app.command("predict")
@friendly_errors
def predict_command(
    run_dir: Path = typer.Argument(..., help="a run folder written by fgvc train"),
    images: Path = typer.Argument(..., help="folder of images to classify"),
    out: Path = typer.Option(Path("submission.csv"), help="CSV to write"),
    kind: str = typer.Option("label", "--format", help="label: id,label rows; probs: id + one column per class"),
    id_column: str = typer.Option("id", help="name of the id column"),
    label_column: str = typer.Option("label", help="name of the label column (label format)"),
) -> None:
    """Classify a folder of images and write a Kaggle submission CSV."""
    from fgvc.evaluate.predict import predict_probs, write_submission
    from fgvc.evaluate.runs import images_in_folder, load_trained

    if kind not in ("label", "probs"):
        raise FgvcError(f"--format {kind!r}: use label or probs")
    run = load_trained(run_dir)
    folder = images_in_folder(images, run.class_names)
    probs = predict_probs(run.model, folder, run.eval_transform, run.cfg.eval.batch_size, tta=run.cfg.eval.tta)
    write_submission(out, list(folder.meta["id"]), probs, run.class_names, kind, id_column, label_column)
    console.print(f"wrote {len(folder)} predictions to {out}")


@app.command("summary")
@friendly_errors
def summary_command(
    config: Path = ConfigArg,
    set_: List[str] = SetOption,
    measure: bool = typer.Option(True, help="measure activation memory with one forward/backward"),
    detail: bool = typer.Option(False, help="also print torchinfo's layer table"),
    num_classes: Optional[int] = typer.Option(None, help="class count (default: read from the data set)"),
) -> None:
    """Parameters (total / trainable / frozen) and memory of the model under its strategy."""
    from fgvc.models.summary import human_bytes, summarize
    from fgvc.data import load_data
    from fgvc.evaluate.runs import build_network

    cfg = load_config(config, set_)
    num_classes = num_classes or load_data(cfg.data).num_classes
    model, _ = build_network(cfg, num_classes, pretrained=False)
    result = summarize(model, cfg.model.name, cfg.strategy.name, cfg.optim.name,
                       batch_size=cfg.train.batch_size if measure else 0, image_size=cfg.data.transforms.crop)
    table = Table(title=f"{cfg.model.name}, strategy {cfg.strategy.name}, {num_classes} classes")
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_row("total parameters", f"{result.total_params:,}")
    table.add_row("trainable parameters", f"{result.trainable_params:,}")
    table.add_row("frozen parameters", f"{result.frozen_params:,}")
    table.add_row("parameter memory", human_bytes(result.param_bytes))
    table.add_row("gradient memory", human_bytes(result.grad_bytes))
    table.add_row(f"optimizer state ({cfg.optim.name})", human_bytes(result.optimizer_bytes))
    if measure:
        table.add_row(f"activations (batch {result.batch_size}, {result.image_size}px)", human_bytes(result.activation_bytes))
    console.print(table)
    if detail:
        import torchinfo

        console.print(str(torchinfo.summary(model, input_size=(1, 3, cfg.data.transforms.crop, cfg.data.transforms.crop), verbose=0)))


@tune_app.command("lr")
@friendly_errors
def tune_lr(config: Path = ConfigArg, set_: List[str] = SetOption,
            out: Optional[Path] = typer.Option(None, help="plot path (default RUN_DIR/lr_find.png)"),
            steps: int = typer.Option(100, min=5, help="training steps of the range test")) -> None:
    """Learning-rate range test: plot of loss against lr, and a suggested lr."""
    from fgvc.train.tune import find_lr

    cfg = load_config(config, set_)
    finding = find_lr(cfg, out or cfg.run_dir / "lr_find.png", steps=steps)
    console.print(f"suggested lr: {finding.suggestion:.3g}" if finding.suggestion else "no suggestion (loss too flat)")
    console.print(f"plot: {finding.plot}")


@tune_app.command("batch-size")
@friendly_errors
def tune_batch_size(config: Path = ConfigArg, set_: List[str] = SetOption,
                    max_trials: int = typer.Option(10, help="doublings to try")) -> None:
    """The largest batch size whose training step fits in memory."""
    from fgvc.train.tune import find_batch_size

    console.print(f"largest batch size that fits: {find_batch_size(load_config(config, set_), max_trials=max_trials)}")


def _print_summary(summary: dict, split: str = "test") -> None:
    from fgvc.evaluate.stats import Description

    table = Table(title=f"{summary['kind']} over {len(summary['members'])} runs, {split} split (mean and 95% CI)")
    for column in ("metric", "mean", "std", "95% CI", "min", "max"):
        table.add_column(column, justify="right" if column != "metric" else "left")
    for metric, stats in summary["metrics"].get(split, {}).items():
        d = Description(**stats)
        ci = f"[{d.ci_low:.4f}, {d.ci_high:.4f}]" if d.ci_low is not None else "-"
        table.add_row(metric, f"{d.mean:.4f}", f"{d.std:.4f}", ci, f"{d.min:.4f}", f"{d.max:.4f}")
    console.print(table)


@app.command("repeat")
@friendly_errors
def repeat_command(
    config: Path = ConfigArg,
    set_: List[str] = SetOption,
    seeds: str = typer.Option("5", help="a count (from the config's seed on) or a list: 1,7,42"),
    random_seeds: bool = typer.Option(False, help="draw the seeds at random (kept in group.json)"),
    out: Optional[Path] = typer.Option(None, help="group folder (default RUN_DIR-repeat)"),
    bootstrap: int = typer.Option(0, help="bootstrap resamples for the CI (0: Student t)"),
) -> None:
    """Train the config once per seed; mean, std, min/max and a 95% CI of every metric."""
    from fgvc.experiments.repeat import draw_seeds, parse_seeds, repeat

    cfg = load_config(config, set_)
    seed_list = draw_seeds(int(seeds)) if random_seeds else parse_seeds(seeds, cfg.seed)
    summary = repeat(cfg, seed_list, out, bootstrap=bootstrap, log=console.print)
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
) -> None:
    """Stratified k-fold cross-validation: per-fold and aggregated metrics."""
    from fgvc.experiments.crossval import crossval

    summary = crossval(load_config(config, set_), folds, out, retrain=retrain, log=console.print)
    _print_summary(summary, "val")
    if "final" in summary and "test" in summary["final"]:
        _print_metrics("retrained on all folds: test metrics", summary["final"]["test"])
    console.print(f"group folder: {summary['group']}")


@app.command("compare")
@friendly_errors
def compare_command(
    groups: List[Path] = typer.Argument(..., help="run groups (folders from repeat / crossval / sweep)"),
    split: str = typer.Option("test", help="val or test"),
    metric: List[str] = typer.Option([], help="metrics to compare (default top1, f1_macro, auroc_macro, ece)"),
) -> None:
    """Difference of means with CI and a paired (or Welch) test for each group against the first."""
    from fgvc.experiments.compare import compare_groups

    rows = compare_groups(groups, split, metric or None)
    table = Table(title=f"{split} split: B - A")
    for column in ("A", "B", "metric", "mean A", "mean B", "B - A", "95% CI", "test", "p"):
        table.add_column(column)
    for a, b, c, _ in rows:
        table.add_row(a, b, c.metric, f"{c.mean_a:.4f}", f"{c.mean_b:.4f}", f"{c.diff:+.4f}",
                      f"[{c.ci_low:+.4f}, {c.ci_high:+.4f}]", c.test, f"{c.p_value:.3g}")
    console.print(table)
    for *_, text in rows:
        console.print(text, highlight=False)


@app.command("sweep")
@friendly_errors
def sweep_command(
    config: Path = ConfigArg,
    set_: List[str] = SetOption,
    grid: List[str] = typer.Option(..., help="KEY=V1,V2,... (repeatable: the grid is their product)"),
    seeds: str = typer.Option("3", help="a count or a list of seeds, the same in every cell"),
    out: Optional[Path] = typer.Option(None, help="sweep folder (default RUN_DIR-sweep)"),
    split: str = typer.Option("test", help="split the comparison uses"),
) -> None:
    """Run a grid of config values x seeds and compare every cell with the first."""
    from fgvc.experiments.repeat import parse_seeds
    from fgvc.experiments.sweep import parse_grid, sweep

    cfg = load_config(config, set_)
    result = sweep(cfg, parse_grid(grid), parse_seeds(seeds, cfg.seed), out, split, log=console.print)
    for row in result["comparisons"]:
        console.print(row["verdict"], highlight=False)


def main() -> None:  # pragma: no cover - console script entry
    app()

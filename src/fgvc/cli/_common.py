"""Shared pieces of the command line: the Typer apps, consoles, options and printing helpers."""

from __future__ import annotations

import functools
from typing import Callable

import typer
import typer.core
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fgvc.errors import FgvcError


def _flags_without_a_type(display_type_rich: Callable) -> Callable:
    """Typer shows ``<bool>`` beside every on/off flag (``--progress/--no-progress <bool>``), which reads as
    if the flag took a value; a flag's help shows no type."""

    @functools.wraps(display_type_rich)
    def display(self, ctx):
        return None if self.is_flag else display_type_rich(self, ctx)

    return display


typer.core.TyperOption.display_type_rich = _flags_without_a_type(typer.core.TyperOption.display_type_rich)

app = typer.Typer(
    help="fgvc: fine-grained visual classification done properly.", no_args_is_help=True, add_completion=False
)
config_app = typer.Typer(help="Inspect experiment configs.", no_args_is_help=True)
data_app = typer.Typer(help="Check and look at data sets.", no_args_is_help=True)
tune_app = typer.Typer(help="Find a learning rate or the largest batch size.", no_args_is_help=True)


def _version(value: bool) -> None:
    if value:
        import fgvc

        typer.echo(f"fgvc {fgvc.__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="print fgvc's version and exit"),
          trust_checkpoint: bool = typer.Option(
              False, "--trust-checkpoint", help="load checkpoints with full pickle, which can run code: only for "
              "files you made yourself (default: weights only; also FGVC_TRUST_CHECKPOINTS=1)")) -> None:
    """fgvc: fine-grained visual classification done properly."""
    from fgvc.cpu_memory import keep_cpu_memory

    keep_cpu_memory(True)  # eval, predict, explain, features: 2.8x CPU forward passes at 300 px (bench/cpu_memory.py)
    if trust_checkpoint:  # an environment variable: Ray workers and stage processes inherit it
        from fgvc.trust import trust_checkpoints

        trust_checkpoints(True)


app.add_typer(config_app, name="config")
app.add_typer(data_app, name="data")
app.add_typer(tune_app, name="tune")

console = Console()
err_console = Console(stderr=True)

ConfigArg = typer.Argument(..., help="experiment config (YAML)", exists=False)
SetOption = typer.Option([], "--set", help="override a config value: key.path=value (repeatable)")
ExecutorOption = typer.Option(None, "--executor", help="where the runs train: local (one after another here) or "
                                                       "ray (side by side on Ray workers); default: "
                                                       "$FGVC_EXECUTOR or the config's executor.name")
AddressOption = typer.Option(None, "--address", help="a running Ray cluster (ray://HEAD:10001, auto); "
                                                     "default: $FGVC_RAY_ADDRESS, or start a local one")
CpusOption = typer.Option(None, "--cpus-per-trial", help="Ray: CPUs per run (its torch threads); default 1")
GpusOption = typer.Option(None, "--gpus-per-trial", help="Ray: GPUs per run (fractions share one); default 0")


def make_group_executor(cfg, executor, address, cpus_per_trial, gpus_per_trial):
    """The executor the CLI's options (over the environment, over the config) choose."""
    from fgvc.experiments.executors import executor_settings, make_executor

    return make_executor(executor_settings(cfg, executor, address, cpus_per_trial, gpus_per_trial))


def friendly_errors(command: Callable) -> Callable:
    """Print FgvcErrors as one clear message (no traceback) and exit with status 2 (130 / 143 for a run
    stopped by SIGINT / SIGTERM)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except FgvcError as exc:
            # escaped: messages hold literal brackets ("pip install 'fgvc[ray]'") that are not markup
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(getattr(exc, "exit_code", 2)) from None

    return wrapper


def _print_metrics(title: str, metrics: dict) -> None:
    from fgvc.evaluate.metrics import headline

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in headline(metrics).items():
        table.add_row(key, str(value) if key == "n" else f"{value:.4f}")
    console.print(table)


def _print_per_class(title: str, metrics: dict) -> None:
    """Per-class precision, recall, F1 and support (scikit-learn's classification report, as a table)."""
    per_class = metrics.get("per_class")
    if not per_class:
        return
    table = Table(title=title)
    for column in ("class", "precision", "recall", "f1", "support"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for name, row in per_class.items():
        table.add_row(name, f"{row['precision']:.4f}", f"{row['recall']:.4f}", f"{row['f1']:.4f}",
                      str(row["support"]))
    console.print(table)


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
    if summary.get("warning"):
        err_console.print(f"[bold yellow]warning:[/] {summary['warning']}", highlight=False)

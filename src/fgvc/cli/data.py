"""fgvc commands: config show, config choices, data verify, data show."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from fgvc.cli._common import ConfigArg, SetOption, config_app, console, data_app, err_console, friendly_errors
from fgvc.config import load_config
from fgvc.runfolder import RunFolder


@config_app.command("show")
@friendly_errors
def config_show(config: Path = ConfigArg, set_: List[str] = SetOption,
                everything: bool = typer.Option(False, "--all", help="also the sections this config does not use "
                                                                      "(executor, gan, diffusion, stable_diffusion)"),
                plain: bool = typer.Option(False, help="YAML without the key descriptions")) -> None:
    """Print the resolved config (defaults filled in, overrides applied), each key with its description."""
    from fgvc.config.describe import described_yaml

    cfg = load_config(config, set_)
    text = cfg.to_yaml() if plain else described_yaml(cfg, everything)
    console.print(text, end="", highlight=False, markup=False, soft_wrap=True)


@config_app.command("choices")
@friendly_errors
def config_choices() -> None:
    """List the registered names each config key accepts (data sets, strategies, engines, poolings)."""
    from fgvc.registry import CONFIG_CHOICES

    for key, registry in CONFIG_CHOICES.items():
        table = Table(title=f"{key} ({registry.what})", title_justify="left")
        table.add_column("name")
        table.add_column("what it is")
        for name in registry.names():
            table.add_row(name, registry.doc(name))
        console.print(table)


@data_app.command("verify")
@friendly_errors
def data_verify(
    config: Path = ConfigArg,
    set_: List[str] = SetOption,
    out: Optional[Path] = typer.Option(None, help="JSON report path (default: RUN_DIR/data_verify.json)"),
    strict: bool = typer.Option(False, help="exit 1 when unreadable files, cross-split duplicates or label conflicts are found"),
) -> None:
    """Counts per class and split, image sizes, unreadable files, duplicates across splits."""
    from fgvc.data import load_data
    from fgvc.data.readable import remember_verified
    from fgvc.data.verify import verify_splits

    cfg = load_config(config, set_)
    # verify lists every problem, so it reads ids that training refuses (as label conflicts below)
    splits = load_data(cfg.data.model_copy(update={"allow_duplicate_ids": True}))
    total = sum(len(images) for _, images in splits.named())
    with Progress(TextColumn("verifying {task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err_console, transient=True) as bar:
        task = bar.add_task(cfg.data.name, total=total)
        report = verify_splits(splits, workers=max(1, cfg.data.num_workers), progress=lambda _s, n: bar.advance(task, n))
    remember_verified(splits, report, cfg.data.cache_dir)  # training's readability check reuses this pass
    _print_verify(report, cfg.data.name)
    out = out or RunFolder(cfg.run_dir).data_verify_file
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
        table.add_column(split, justify="right", footer=str(report.totals.get(split, sum(report.counts[split]))))
    for index, class_name in enumerate(report.class_names):
        # an unlabelled split has no per-class counts: its images show in the total only
        table.add_row(class_name, *(str(report.counts[s][index]) if s != "unlabelled" else "-" for s in splits))
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
    if report.conflicts:
        console.print(f"[bold red]{len(report.conflicts)} images appear under different labels (label conflicts):[/]")
        for dup in report.conflicts[:20]:
            console.print("  " + "  ==  ".join(f"[{s}] {p} ({label or 'unlabelled'})"
                                               for (s, p), label in zip(dup.images, dup.labels)), highlight=False)
    if report.repeats:
        console.print(f"[yellow]{len(report.repeats)} images repeated within a split:[/]")
        for dup in report.repeats[:10]:
            console.print("  " + "  ==  ".join(p for _, p in dup.images), highlight=False)
    if report.notes:
        by_kind: dict[str, list] = {}
        for note in report.notes:
            by_kind.setdefault(note.note, []).append(note)
        console.print(f"notes on {len({n.image for n in report.notes})} odd but readable images (not errors; "
                      "every one is in the JSON report):")
        for kind, notes in by_kind.items():
            examples = ", ".join(Path(n.image).name for n in notes[:3]) + (", ..." if len(notes) > 3 else "")
            console.print(f"  {kind}: {len(notes)} image{'s' if len(notes) > 1 else ''} ({examples})", highlight=False)
    if report.skipped_links:
        console.print(f"[yellow]{len(report.skipped_links)} folder links not followed (a link back into the data "
                      "folder never is; others only with data.follow_links: true):[/]")
        for link in report.skipped_links[:20]:
            console.print(f"  {link}", highlight=False)
    if report.ok:
        console.print("[green]no unreadable files, no duplicates across splits, no label conflicts[/]")


@data_app.command("pack")
@friendly_errors
def data_pack(
    config: Path = ConfigArg,
    set_: List[str] = SetOption,
    out: Path = typer.Option(..., "--out", help="folder to write the shards to (copy it to a server or bucket after)"),
    format_: str = typer.Option("litdata", "--format", help="litdata (what data.name: shards reads) or webdataset "
                                                             "(tars for timm and the Hugging Face Hub)"),
) -> None:
    """Pack the config's train / val / test (and unlabelled) splits into shards; re-run to resume a killed pack."""
    from fgvc.data.shards.pack import pack_data

    cfg = load_config(config, set_)
    with Progress(TextColumn("packing {task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err_console, transient=True) as bar:
        tasks: dict = {}

        def advance(split: str, done: int, total: int) -> None:
            if split not in tasks:
                tasks[split] = bar.add_task(split, total=total)
            bar.update(tasks[split], completed=done)

        manifest = pack_data(cfg.data, out, format_, progress=advance)
    counts = ", ".join(f"{split} {count}" for split, count in manifest.splits.items())
    console.print(f"{manifest.format} shards of {manifest.source} in {out}: {counts} "
                  f"({len(manifest.classes)} classes, fingerprint {manifest.fingerprint})")


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
    path = preview_config(cfg, out or RunFolder(cfg.run_dir).data_preview, count=count, split=split, augmented=augmented)
    console.print(f"saved {path}")

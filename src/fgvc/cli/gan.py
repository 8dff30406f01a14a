"""fgvc commands: gan train, gan sample."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from fgvc.cli._common import SetOption, app, console, friendly_errors
from fgvc.config import load_config
from fgvc.errors import FgvcError

gan_app = typer.Typer(help="Class-conditional GAN: train it, sample labelled images.", no_args_is_help=True)
app.add_typer(gan_app, name="gan")


@gan_app.command("train")
@friendly_errors
def gan_train(
    config: Optional[Path] = typer.Argument(None, help="experiment config (YAML) with a gan: section"),
    set_: List[str] = SetOption,
    resume: Optional[Path] = typer.Option(None, "--resume", help="continue the GAN run in RUN_DIR"),
    progress: bool = typer.Option(True, help="show progress bars"),
) -> None:
    """Train a class-conditional GAN on the real training split (progress grids in RUN_DIR/samples)."""
    from fgvc.generate.gan_run import train_gan

    if resume is not None:
        run_dir = train_gan(load_config(resume / "config.yaml"), resume, resume=True, progress=progress)
    elif config is None:
        raise FgvcError("give a CONFIG, or --resume RUN_DIR")
    else:
        run_dir = train_gan(load_config(config, set_), progress=progress)
    console.print(f"GAN run folder: {run_dir} (progress grid: {run_dir / 'samples' / 'latest.png'})")


@gan_app.command("sample")
@friendly_errors
def gan_sample(
    run_dir: Path = typer.Argument(..., help="a GAN run folder"),
    per_class: int = typer.Option(..., min=1, help="images per class"),
    out: Path = typer.Option(..., help="folder for the images and manifest.csv"),
    seed: int = typer.Option(0, help="sampling seed"),
) -> None:
    """Write N generated images per class with a manifest the data layer reads (data.synthetic)."""
    from fgvc.generate.gan_run import sample_gan

    console.print(f"wrote {sample_gan(run_dir, per_class, out, seed)}")

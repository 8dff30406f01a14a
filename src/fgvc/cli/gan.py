"""fgvc commands: gan train / sample, diffusion train / sample."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from fgvc.cli._common import SetOption, app, console, friendly_errors
from fgvc.config import load_config
from fgvc.errors import FgvcError
from fgvc.runfolder import RunFolder

gan_app = typer.Typer(help="Class-conditional GAN: train it, sample labelled images.", no_args_is_help=True)
diffusion_app = typer.Typer(help="Class-conditional diffusion (diffusers): train it, sample labelled images.",
                            no_args_is_help=True)
app.add_typer(gan_app, name="gan")
app.add_typer(diffusion_app, name="diffusion")


def _train(kind: str, config: Optional[Path], set_: List[str], resume: Optional[Path], progress: bool) -> None:
    from fgvc.generate.run import train_generator

    if resume is not None:
        run_dir = train_generator(load_config(RunFolder(resume).require().config_file), kind, resume, resume=True, progress=progress)
    elif config is None:
        raise FgvcError("give a CONFIG, or --resume RUN_DIR")
    else:
        run_dir = train_generator(load_config(config, set_), kind, progress=progress)
    console.print(f"{kind} run folder: {run_dir} (progress grid: {RunFolder(run_dir).latest_samples})")


@gan_app.command("train")
@friendly_errors
def gan_train(
    config: Optional[Path] = typer.Argument(None, help="experiment config (YAML) with a gan: section"),
    set_: List[str] = SetOption,
    resume: Optional[Path] = typer.Option(None, "--resume", help="continue the GAN run in RUN_DIR"),
    progress: bool = typer.Option(True, help="show progress bars"),
) -> None:
    """Train a class-conditional GAN on the real training split (progress grids in RUN_DIR/samples)."""
    _train("gan", config, set_, resume, progress)


@gan_app.command("sample")
@friendly_errors
def gan_sample(
    run_dir: Path = typer.Argument(..., help="a GAN run folder"),
    per_class: int = typer.Option(..., min=1, help="images per class"),
    out: Path = typer.Option(..., help="folder for the images and manifest.csv"),
    seed: int = typer.Option(0, help="sampling seed"),
) -> None:
    """Write N generated images per class with a manifest the data layer reads (data.synthetic)."""
    from fgvc.generate.run import sample_generator

    console.print(f"wrote {sample_generator(run_dir, per_class, out, seed)}")


@diffusion_app.command("train")
@friendly_errors
def diffusion_train(
    config: Optional[Path] = typer.Argument(None, help="experiment config (YAML) with a diffusion: section"),
    set_: List[str] = SetOption,
    resume: Optional[Path] = typer.Option(None, "--resume", help="continue the diffusion run in RUN_DIR"),
    progress: bool = typer.Option(True, help="show progress bars"),
) -> None:
    """Train a class-conditional DDPM (label dropout for classifier-free guidance)."""
    _train("diffusion", config, set_, resume, progress)


@diffusion_app.command("sample")
@friendly_errors
def diffusion_sample(
    run_dir: Path = typer.Argument(..., help="a diffusion run folder"),
    per_class: int = typer.Option(..., min=1, help="images per class"),
    out: Path = typer.Option(..., help="folder for the images and manifest.csv"),
    steps: int = typer.Option(50, min=1, help="DDIM sampling steps"),
    guidance: float = typer.Option(2.0, min=0, help="classifier-free guidance scale"),
    seed: int = typer.Option(0, help="sampling seed"),
) -> None:
    """Write N generated images per class (DDIM, classifier-free guidance) with a manifest."""
    from fgvc.generate.run import sample_generator

    console.print(f"wrote {sample_generator(run_dir, per_class, out, seed, steps=steps, guidance=guidance)}")

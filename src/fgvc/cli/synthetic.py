"""fgvc commands: synthetic filter / quality / text2image / img2img."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from fgvc.cli._common import ConfigArg, SetOption, app, console, friendly_errors
from fgvc.config import load_config

synthetic_app = typer.Typer(help="Check and filter generated (synthetic) labelled images.", no_args_is_help=True)
app.add_typer(synthetic_app, name="synthetic")


@synthetic_app.command("filter")
@friendly_errors
def filter_command(
    run_dir: Path = typer.Argument(..., help="a trained classifier's run folder"),
    synthetic_dir: Path = typer.Argument(..., help="folder with manifest.csv"),
    out: Path = typer.Option(..., help="folder for the images that pass"),
    threshold: float = typer.Option(0.5, min=0, max=1, help="least probability of the intended label"),
) -> None:
    """Keep the synthetic images the classifier assigns to their intended label with confidence."""
    from fgvc.generate.label_filter import filter_synthetic

    report = filter_synthetic(run_dir, synthetic_dir, out, threshold)
    for name, row in report["per_class"].items():
        console.print(f"{name}: kept {row['kept']} of {row['generated']} ({row['kept_fraction']:.0%})", highlight=False)
    console.print(f"kept {report['kept']} of {report['generated']} into {out}")


@synthetic_app.command("quality")
@friendly_errors
def quality_command(
    config: Path = ConfigArg,
    synthetic_dir: Path = typer.Argument(..., help="folder with manifest.csv"),
    set_: List[str] = SetOption,
    backbone: str = typer.Option("inception_v3_tf", help="inception_v3_tf: the standard FID network; inception_v3 "
                                 "(torchvision weights, with --weights); or any timm / fgvc model"),
    weights: Optional[str] = typer.Option(None, help="local weights for the backbone (offline)"),
    size: int = typer.Option(224, help="input size of a timm / fgvc feature extractor"),
) -> None:
    """FID and KID of the synthetic images against the real training split, overall and per class."""
    from fgvc.data import load_data
    from fgvc.data.sources.synthetic import load_synthetic
    from fgvc.generate.extractors import extractor_for
    from fgvc.generate.quality import quality

    cfg = load_config(config, set_)
    real = load_data(cfg.data.model_copy(update={"synthetic": None})).train
    fake = load_synthetic(synthetic_dir, real.class_names)
    result = quality(real, fake, extractor_for(backbone, weights, size))
    console.print_json(json.dumps({k: v for k, v in result.items() if k != "per_class"}))
    for name, values in result["per_class"].items():
        console.print(f"{name}: " + ", ".join(f"{k} {v:.3f}" for k, v in values.items()), highlight=False)


@synthetic_app.command("text2image")
@friendly_errors
def text2image_command(
    config: Path = ConfigArg,
    set_: List[str] = SetOption,
    per_class: int = typer.Option(..., min=1, help="images per class"),
    out: Path = typer.Option(..., help="folder for the images and manifest.csv"),
    seed: int = typer.Option(0, help="sampling seed"),
) -> None:
    """Stable Diffusion images from the class prompt (stable_diffusion.template) for every class."""
    from fgvc.data import load_data
    from fgvc.generate.text_to_image import text_to_image

    cfg = load_config(config, set_)
    classes = load_data(cfg.data.model_copy(update={"synthetic": None})).class_names
    console.print(f"wrote {text_to_image(cfg.stable_diffusion, classes, per_class, out, seed)}")


@synthetic_app.command("img2img")
@friendly_errors
def img2img_command(
    config: Path = ConfigArg,
    set_: List[str] = SetOption,
    per_image: int = typer.Option(1, min=1, help="variations per real training image"),
    out: Path = typer.Option(..., help="folder for the images and manifest.csv"),
    seed: int = typer.Option(0, help="sampling seed"),
) -> None:
    """DA-Fusion-style variations of the real training images (stable_diffusion.strength), labels kept."""
    from fgvc.data import load_data
    from fgvc.generate.text_to_image import image_variations

    cfg = load_config(config, set_)
    train = load_data(cfg.data.model_copy(update={"synthetic": None})).train
    console.print(f"wrote {image_variations(cfg.stable_diffusion, train, per_image, out, seed)}")

"""fgvc commands: synthetic filter, synthetic quality."""

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
    backbone: str = typer.Option("resnet50", help="timm / fgvc model whose features are compared"),
    weights: Optional[str] = typer.Option(None, help="local weights for the backbone (offline)"),
    size: int = typer.Option(224, help="input size of the feature extractor"),
) -> None:
    """FID and KID of the synthetic images against the real training split, overall and per class."""
    from fgvc.data import load_data
    from fgvc.data.sources.synthetic import load_synthetic
    from fgvc.generate.quality import quality, timm_extractor

    cfg = load_config(config, set_)
    real = load_data(cfg.data.model_copy(update={"synthetic": None})).train
    fake = load_synthetic(synthetic_dir, real.class_names)
    result = quality(real, fake, timm_extractor(backbone, weights, size, pretrained=weights is None))
    console.print_json(json.dumps({k: v for k, v in result.items() if k != "per_class"}))
    for name, values in result["per_class"].items():
        console.print(f"{name}: " + ", ".join(f"{k} {v:.3f}" for k, v in values.items()), highlight=False)

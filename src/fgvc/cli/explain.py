"""fgvc commands: explain."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from fgvc.cli._common import app, console, friendly_errors


@app.command("explain")
@friendly_errors
def explain_command(
    run_dir: Path = typer.Argument(..., help="a run folder written by fgvc train"),
    images: List[Path] = typer.Argument(None, help="image files or folders (omit with --gallery)"),
    method: Optional[str] = typer.Option(None, help="gradcam, gradcam++, scorecam (CNNs and ViTs); rollout, attention "
                                                    "(ViTs); default: attention for a ViT, gradcam otherwise"),
    out: Optional[Path] = typer.Option(None, help="folder for the overlays (default RUN_DIR/explain)"),
    gallery: bool = typer.Option(False, "--gallery", help="explain right and wrong test predictions for the report"),
) -> None:
    """Overlay PNGs of what the model looks at, with the predicted and true class."""
    from fgvc.explain.run_explain import explain_images
    from fgvc.explain.run_explain import gallery as make_gallery

    if gallery:
        console.print(f"wrote {make_gallery(run_dir, method)}")
        from fgvc.report.html import run_report

        run_report(run_dir)
        return
    if not images:
        raise typer.BadParameter("give IMAGES to explain, or --gallery")
    results = explain_images(run_dir, images, method, out)
    for e in results:
        truth = f", true {e.true}" if e.true else ""
        console.print(f"{e.overlay}: predicted {e.predicted} ({e.probability:.2f}){truth}", highlight=False)

"""fgvc commands that ship a trained run: export, push to the hub, the web demo."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from fgvc.cli._common import app, console, friendly_errors


@app.command("export")
@friendly_errors
def export_command(
    run_dir: Path = typer.Argument(..., help="a run folder written by fgvc train"),
    fmt: str = typer.Option("onnx", "--format", help="onnx or torchscript"),
    out: Optional[Path] = typer.Option(None, help="folder for the exported files (default RUN/export)"),
    quantize: Optional[str] = typer.Option(None, help="also write an int8 model: dynamic or static (ONNX only); "
                                                      "reports the test-metric change against fp32"),
    calibration: int = typer.Option(64, min=1, help="static: training images to calibrate activations on"),
) -> None:
    """Export the run's model (dynamic batch; classes, input size, mean/std, interpolation stored with it)."""
    from fgvc.export.run_export import export_run

    result = export_run(run_dir, fmt, out, quantize, calibration, log=console.print)
    console.print(f"details: {result['record']}")


@app.command("push")
@friendly_errors
def push_command(
    run_dir: Path = typer.Argument(..., help="a finished run folder"),
    repo_id: Optional[str] = typer.Argument(None, help="USER/REPO on the Hugging Face Hub"),
    local_dir: Optional[Path] = typer.Option(None, help="write the files that would be uploaded here instead"),
    private: bool = typer.Option(False, help="make a new repository private"),
    token: Optional[str] = typer.Option(None, help="Hub token (default: huggingface-cli login's)"),
) -> None:
    """Upload a run to the Hugging Face Hub in timm's layout (model card, config.json, model.safetensors)."""
    from fgvc.errors import FgvcError
    from fgvc.export.hub import hub_layout, push

    if local_dir is not None:
        console.print(f"wrote {hub_layout(run_dir, local_dir)}: load it with "
                      f"timm.create_model('local-dir:{local_dir}')")
        return
    if not repo_id:
        raise FgvcError("fgvc push RUN REPO_ID (e.g. me/elpv-grade-lite0), or --local-dir DIR")
    console.print(f"pushed to {push(run_dir, repo_id, private, token)}")


@app.command("app")
@friendly_errors
def app_command(
    run_dir: Path = typer.Argument(..., help="a finished run folder"),
    port: int = typer.Option(7860, help="port to serve on"),
    host: str = typer.Option("127.0.0.1", help="address to bind (0.0.0.0 to let other machines in)"),
    top_k: int = typer.Option(5, min=1, help="classes shown per image"),
    method: Optional[str] = typer.Option(None, help="gradcam, gradcam++, ..., attention, rollout "
                                                    "(default: attention for a ViT, Grad-CAM otherwise)"),
    max_upload_mb: float = typer.Option(20.0, min=0.001, help="largest upload the server accepts, in MB"),
    queue_size: int = typer.Option(64, min=1, help="requests that may wait for the model at once"),
) -> None:
    """Web demo: upload images, see the top classes, what the model looks at, and the model card."""
    from fgvc.app.web import serve

    # Gradio prints the address once the page is up
    serve(run_dir, port, host, top_k, method, max_upload_mb=max_upload_mb, queue_size=queue_size)

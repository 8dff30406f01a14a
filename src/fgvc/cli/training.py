"""fgvc commands: train, eval, predict, summary, tune."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.markup import escape
from rich.table import Table

from fgvc.cli._common import (
    ConfigArg,
    SetOption,
    _print_metrics,
    _print_per_class,
    app,
    console,
    err_console,
    friendly_errors,
    tune_app,
)
from fgvc.config import load_config
from fgvc.errors import FgvcError
from fgvc.runfolder import RunFolder


def checkpoint_name(value: str) -> str:
    """The --checkpoint option: best or last."""
    if value not in ("last", "best"):
        raise FgvcError(f"--checkpoint {value!r}: use best or last")
    return value


@app.command("train")
@friendly_errors
def train_command(
    config: Optional[Path] = typer.Argument(None, help="experiment config (YAML); omit with --resume"),
    set_: List[str] = SetOption,
    resume: Optional[Path] = typer.Option(None, "--resume", help="continue the killed run in RUN_DIR"),
    checkpoint: str = typer.Option("last", help="with --resume: continue from the last or the best checkpoint"),
    progress: bool = typer.Option(True, help="show progress bars"),
) -> None:
    """Fine-tune a model; writes a run folder with checkpoints, history, metrics and plots."""
    if resume is None and config is None:
        raise FgvcError("give a CONFIG to train, or --resume RUN_DIR to continue a run")
    cfg = load_config(config, set_) if resume is None else None  # checked before the heavy imports
    from fgvc.train.run import resume as resume_run
    from fgvc.train.run import train

    if resume is not None:
        result = resume_run(resume, progress=progress, checkpoint=checkpoint_name(checkpoint))
    else:
        result = train(cfg, progress=progress)
    for split in ("val", "test"):
        if split in result.metrics:
            _print_metrics(f"{split} metrics (best checkpoint)", result.metrics[split])
    console.print(f"run folder: {result.run_dir}")


@app.command("eval")
@friendly_errors
def eval_command(
    run_dir: Path = typer.Argument(..., help="a run folder written by fgvc train"),
    split: Optional[str] = typer.Option(None, help="val or test (default: the run's eval.split)"),
    checkpoint: str = typer.Option("best", help="best or last"),
) -> None:
    """Evaluate a trained run on a split; writes metrics_<split>.json and predictions_<split>.csv."""
    from fgvc.evaluate.runs import evaluate_split, load_trained

    run = load_trained(run_dir, checkpoint_name(checkpoint))
    split = split or run.cfg.eval.split
    metrics = evaluate_split(run, split)
    _print_metrics(f"{split} metrics", metrics)
    _print_per_class(f"{split}: per class", metrics)


@app.command("predict")
@friendly_errors
def predict_command(
    run_dir: Path = typer.Argument(..., help="a run folder written by fgvc train"),
    images: List[Path] = typer.Argument(..., help="image files and/or folders of images to classify"),
    out: Path = typer.Option(Path("submission.csv"), help="CSV to write"),
    kind: str = typer.Option("label", "--format", help="label: id,label rows; probs: id + one column per class"),
    id_column: str = typer.Option("id", help="name of the id column"),
    label_column: str = typer.Option("label", help="name of the label column (label format)"),
    ids: str = typer.Option("stem", help="each row's id: stem (0), name (0.jpg) or path (images/0.jpg: the "
                                         "folder's name and the file's, as Kaggle's classify-leaves wants)"),
    engine: Optional[str] = typer.Option(None, help="torch (the run's model; the default) or onnx (ONNX Runtime on "
                                                    "an exported model: RUN/export/model.onnx, or --model)"),
    model_file: Optional[Path] = typer.Option(None, "--model", help="an .onnx file exported from this run (e.g. "
                                                                    "its int8 one); implies --engine onnx"),
) -> None:
    """Classify images (files or folders) and write a Kaggle submission CSV; a few images also get their
    top-k classes printed. An ONNX file runs only if it was exported from RUN_DIR (same classes, input
    size and normalisation; its metadata says), and nothing is written otherwise."""
    from fgvc.evaluate.predict import predict_probs, write_submission
    from fgvc.evaluate.runs import images_to_predict, load_trained
    from fgvc.export.engines import ENGINES

    if kind not in ("label", "probs"):
        raise FgvcError(f"--format {kind!r}: use label or probs")
    engine = engine or ("onnx" if model_file is not None else "torch")
    if engine not in ENGINES:
        raise FgvcError(f"--engine {engine!r}: use {' or '.join(ENGINES)}")
    if model_file is not None and engine != "onnx":
        raise FgvcError(f"--model {model_file} is an ONNX file, which --engine {engine} does not run; drop "
                        "--engine (--model implies onnx) or drop --model")
    if not out.parent.is_dir():  # before any work: a CSV nobody can write costs the whole prediction
        raise FgvcError(f"--out {out}: folder {out.parent} does not exist; create it or choose another path")
    run = load_trained(run_dir)
    if engine == "onnx":
        import dataclasses

        from fgvc.export.engines import onnx_model_for

        run = dataclasses.replace(run, model=onnx_model_for(run, model_file or RunFolder(run_dir).onnx_model))
    folder = images_to_predict(images, run.class_names, ids,
                               log=lambda note: err_console.print(f"[yellow]warning:[/] {escape(note)}", highlight=False))
    probs = predict_probs(run.model, folder, run.tta_transform(run.cfg.eval.tta), run.cfg.eval.batch_size,
                          tta=run.cfg.eval.tta)
    write_submission(out, list(folder.meta["id"]), probs, run.class_names, kind, id_column, label_column)
    if len(folder) <= TOP_K_PRINTED:
        _print_top_k(folder, probs, run.class_names, min(run.cfg.eval.top_k, len(run.class_names)))
    console.print(f"wrote {len(folder)} predictions to {out}")


TOP_K_PRINTED = 10  # predict prints each image's top-k classes up to this many images


def _print_top_k(images, probs, class_names: list[str], k: int) -> None:
    from rich.table import Table

    table = Table(title=f"top-{k} classes")
    table.add_column("image")
    for rank in range(1, k + 1):
        table.add_column(f"#{rank}")
    top = probs.topk(k, dim=-1)
    for i in range(len(images)):
        table.add_row(images.paths[i].name, *[f"{class_names[int(c)]} {float(p):.3f}"
                                              for p, c in zip(top.values[i], top.indices[i])])
    console.print(table)


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
    cfg = load_config(config, set_)  # checked before the heavy imports
    from fgvc.data import load_data
    from fgvc.models.assembly import build_network
    from fgvc.models.summary import human_bytes, summarize

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
    cfg = load_config(config, set_)  # checked before the heavy imports
    from fgvc.train.tune import find_lr

    finding = find_lr(cfg, out or RunFolder(cfg.run_dir).lr_find_plot, steps=steps)
    console.print(f"suggested lr: {finding.suggestion:.3g}" if finding.suggestion else "no suggestion (loss too flat)")
    console.print(f"plot: {finding.plot}")


@tune_app.command("batch-size")
@friendly_errors
def tune_batch_size(config: Path = ConfigArg, set_: List[str] = SetOption,
                    max_trials: int = typer.Option(10, help="doublings to try")) -> None:
    """The largest batch size whose training step fits in memory."""
    from fgvc.train.tune import find_batch_size

    console.print(f"largest batch size that fits: {find_batch_size(load_config(config, set_), max_trials=max_trials)}")

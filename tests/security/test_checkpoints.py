"""A checkpoint from someone else runs no code. A run folder whose best.ckpt and last.ckpt carry a pickle
that would create a marker file (``os.system("touch MARKER")``) is given to every command that reads a
run or a checkpoint: each refuses it in one line naming the file, and the marker never appears. fgvc's
own checkpoints still load (weights only), ``model.safetensors`` is what the best weights are read from,
and ``--trust-checkpoint`` is the way to load a pickle the user made."""

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from builders import write_colour_config
from typer.testing import CliRunner

from fgvc.cli import app
from fgvc.config import load_config
from fgvc.errors import CheckpointError
from fgvc.evaluate.runs import load_trained
from fgvc.runfolder import RunFolder
from fgvc.train.run import train
from fgvc.trust import TRUST_ENV

runner = CliRunner()
FGVC = str(Path(sys.executable).parent / "fgvc")
REFUSAL = (f"holds Python objects beyond tensors (loading it could run code: GLOBAL {os.system.__module__}.system); "
           "fgvc refuses it")
PIPELINE = ["train.engine=pipeline", "train.pipeline.stages=2", "train.pipeline.microbatches=3",
            "train.pipeline.split=equal", "train.threads=1", "model.name=vit_tiny_patch16_224", "model.img_size=32",
            "data.transforms.resize=32", "data.transforms.crop=32", "train.batch_size=12", "optim.lr=0.001"]


class Payload:
    """Pickled as a call of os.system: whoever unpickles it with full pickle runs the command."""

    def __init__(self, marker: Path):
        self.command = f"touch {shlex.quote(str(marker))}"

    def __reduce__(self):
        return (os.system, (self.command,))


def plant(run_dir: Path, marker: Path, keep_weights_file: bool = False) -> RunFolder:
    """Put the payload into the run's best.ckpt and last.ckpt (beside the real tensors, so that a trusted
    load goes through), and make the run look stopped (a resume would go on from it)."""
    folder = RunFolder(run_dir)
    for which in (RunFolder.BEST, RunFolder.LAST):
        checkpoint = torch.load(folder.checkpoint(which), map_location="cpu", weights_only=True)
        checkpoint["state_dict"]["payload"] = Payload(marker)
        torch.save(checkpoint, folder.checkpoint(which))
    if not keep_weights_file:
        folder.weights_file.unlink(missing_ok=True)  # so the checkpoint is what a command has to read
    folder.set_status("stopped", "stopped by SIGTERM")
    return folder


def copy_run(run_dir: Path, to: Path) -> Path:
    shutil.copytree(run_dir, to)
    return to


@pytest.fixture(scope="module")
def genuine(colour_data, tmp_path_factory) -> Path:
    """One tiny run trained here (2 epochs of a random resnet10t on the colour images)."""
    base = tmp_path_factory.mktemp("genuine")
    config = write_colour_config(base / "exp.yaml", colour_data, base / "runs", epochs=2)
    return train(load_config(config, ["output.name=run"]), progress=False).run_dir


@pytest.fixture(scope="module")
def planted(genuine, tmp_path_factory) -> tuple[RunFolder, Path]:
    """A copy of the genuine run with the payload planted (and no model.safetensors); the marker's path."""
    base = tmp_path_factory.mktemp("planted")
    marker = base / "MARKER"
    return plant(copy_run(genuine, base / "run"), marker), marker


def refusal(path: Path) -> str:
    return (f"error: checkpoint {path} {REFUSAL}. If you made it yourself, pass --trust-checkpoint "
            f"(fgvc --trust-checkpoint COMMAND ...) or set {TRUST_ENV}=1")


def assert_refused(result, path: Path, marker: Path, command: str = "") -> None:
    assert result.exit_code == 2, f"{command}: {result.output}"
    assert result.output.strip().splitlines() == [refusal(path)], f"{command}: {result.output}"
    assert not marker.exists(), f"{command}: the checkpoint's code ran"


def test_every_command_that_reads_a_run_refuses_the_planted_checkpoint_and_runs_nothing(
        planted, genuine, colour_data, tmp_path):
    folder, marker = planted
    run, best, last = str(folder.path), folder.checkpoint(RunFolder.BEST), folder.last_checkpoint
    image = next((colour_data / "test").rglob("*.png"))
    with socket.socket() as busy:  # `fgvc app` serves nothing here even if it got past the model
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        commands = {
            "eval": (["eval", run], best),
            "eval --checkpoint last": (["eval", run, "--checkpoint", "last"], last),
            "predict": (["predict", run, str(image.parent), "--out", str(tmp_path / "submission.csv")], best),
            "export onnx": (["export", run, "--format", "onnx", "--out", str(tmp_path / "onnx")], best),
            "export torchscript": (["export", run, "--format", "torchscript", "--out", str(tmp_path / "ts")], best),
            "explain": (["explain", run, str(image), "--out", str(tmp_path / "explain")], best),
            # other test-time views than the saved predictions': the model is loaded (else the CSVs are read)
            "ensemble": (["ensemble", run, str(genuine), "--tta", "flip", "--out", str(tmp_path / "ensemble")], best),
            "push --local-dir": (["push", run, "--local-dir", str(tmp_path / "hub")], best),
            "synthetic filter": (["synthetic", "filter", run, str(tmp_path), "--out", str(tmp_path / "kept")], best),
            "train --resume": (["train", "--resume", run, "--no-progress"], last),
            "train --resume --checkpoint best": (["train", "--resume", run, "--checkpoint", "best", "--no-progress"],
                                                 best),
            "app": (["app", run, "--port", port], best),
        }
        for name, (args, path) in commands.items():
            result = runner.invoke(app, args)
            assert_refused(result, path, marker, name)
    assert not (tmp_path / "hub").exists() and not (tmp_path / "onnx").exists()  # nothing half-written


def test_a_generator_run_refuses_the_planted_checkpoint(planted, tmp_path):
    folder, marker = planted
    gan = RunFolder(copy_run(folder.path, tmp_path / "gan"))
    gan.generator_file.write_text(json.dumps({"kind": "gan"}))
    result = runner.invoke(app, ["gan", "sample", str(gan.path), "--per-class", "1", "--out", str(tmp_path / "s")])
    assert_refused(result, gan.last_checkpoint, marker)
    result = runner.invoke(app, ["gan", "train", "--resume", str(gan.path), "--no-progress"])
    assert_refused(result, gan.last_checkpoint, marker)


def test_the_real_command_line_prints_one_line_and_runs_nothing(planted):
    folder, marker = planted
    result = subprocess.run([FGVC, "eval", str(folder.path)], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "COLUMNS": "1000"})
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [refusal(folder.checkpoint(RunFolder.BEST))], result.stderr
    assert not marker.exists()


def test_the_pipeline_engine_refuses_the_planted_checkpoint(planted, colour_data, tmp_path):
    """A planted run whose config trains a 2-stage pipeline: its resume, and the two places a stage reads
    the checkpoint (the cut points; each stage's weights and optimizer state), refuse the file. (A genuine
    pipeline checkpoint still resumes exactly: tests/train/test_pipeline_run.py.)"""
    from fgvc.train.engines.pipeline import run_cuts
    from fgvc.train.pipeline_stages import train_stage

    source, marker = planted
    folder = RunFolder(copy_run(source.path, tmp_path / "pipeline"))
    cfg = load_config(folder.config_file, PIPELINE)
    folder.config_file.write_text(cfg.to_yaml())
    refused = re.escape(refusal(folder.last_checkpoint).removeprefix("error: "))
    assert_refused(runner.invoke(app, ["train", "--resume", str(folder.path), "--no-progress"]),
                   folder.last_checkpoint, marker)
    with pytest.raises(CheckpointError, match=refused):
        run_cuts(cfg, torch.nn.Identity(), 3, folder.last_checkpoint)
    with pytest.raises(CheckpointError, match=refused):
        train_stage(cfg, 1, 2, folder, [1], folder.last_checkpoint)
    assert not marker.exists()


def test_the_weights_file_is_what_the_best_weights_are_read_from(genuine, tmp_path):
    """With model.safetensors beside a planted best.ckpt, eval reads the weights file (the same metrics
    as the run's own finish, which read best.ckpt) and runs nothing; --checkpoint last still reads last.ckpt."""
    marker = tmp_path / "MARKER"
    folder = plant(copy_run(genuine, tmp_path / "run"), marker, keep_weights_file=True)
    result = runner.invoke(app, ["eval", str(folder.path)])
    assert result.exit_code == 0, result.output
    evaluated = json.loads(folder.split_metrics_file("test").read_text())
    assert evaluated.pop(RunFolder.PREDICTED_WITH) == {"checkpoint": "best", "tta": []}
    assert evaluated == folder.metrics()["test"]
    assert_refused(runner.invoke(app, ["eval", str(folder.path), "--checkpoint", "last"]), folder.last_checkpoint,
                   marker)
    folder.weights_file.write_bytes(folder.weights_file.read_bytes()[:100])  # a damaged weights file is named
    result = runner.invoke(app, ["eval", str(folder.path)])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert result.output.startswith(f"error: weights file {folder.weights_file} is unreadable")
    assert not marker.exists()


def test_a_lora_run_loads_its_merged_weights_into_the_plain_network(colour_data, tmp_path):
    config = write_colour_config(tmp_path / "exp.yaml", colour_data, tmp_path / "runs", epochs=1)
    run_dir = train(load_config(config, ["output.name=lora", "model.name=vit_tiny_patch16_224", "model.img_size=32",
                                         "data.transforms.resize=32", "data.transforms.crop=32", "strategy.name=lora",
                                         "strategy.lora_rank=4", "optim.lr=0.01"]), progress=False).run_dir
    from_weights, from_checkpoint = load_trained(run_dir), load_trained(run_dir, weights_file=False)
    assert not any("lora" in name for name in from_weights.model.state_dict())
    images = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(from_weights.model(images), from_checkpoint.model(images), atol=1e-5, rtol=1e-4)


def test_trust_checkpoint_loads_a_pickle_the_user_made(genuine, tmp_path, monkeypatch):
    """The planted payload is live (so the refusals above mean something): trusted, it runs."""
    monkeypatch.setenv(TRUST_ENV, "0")  # the flag sets it for this process; put it back afterwards
    marker = tmp_path / "MARKER"
    own = plant(copy_run(genuine, tmp_path / "own"), marker)
    result = runner.invoke(app, ["--trust-checkpoint", "eval", str(own.path)])
    assert result.exit_code == 0, result.output
    assert marker.exists() and os.environ[TRUST_ENV] == "1"

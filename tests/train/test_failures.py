"""Runs that go wrong lose nothing and say so in one line: NaN guards, corrupt checkpoints, bad input
before and after the folder is claimed."""

import json
import re
import shutil

import pytest
import torch
from typer.testing import CliRunner

from fgvc.cli import app
from fgvc.config import load_config
from fgvc.errors import CheckpointError, FgvcError, NonFiniteLossError, WeightsError
from fgvc.runfolder import RunFolder
from fgvc.train.run import resume, train

runner = CliRunner()


def _finite_checkpoint(path):
    state = torch.load(path, map_location="cpu", weights_only=False)
    return all(torch.isfinite(v).all() for v in state["state_dict"].values() if v.is_floating_point()), state


def test_nan_in_a_later_epoch_keeps_the_last_good_checkpoint_and_names_it(tiny_overrides):
    # the lr jumps by 1e30 at epoch 2: the weights blow up there, epochs 0 and 1 are finite
    cfg = load_config(None, tiny_overrides + ["train.epochs=4", "optim.name=sgd", "optim.lr=0.05",
                                              "schedule.name=multistep", "schedule.milestones=[2]",
                                              "schedule.gamma=1e30"])
    with pytest.raises(NonFiniteLossError) as error:
        train(cfg, progress=False)
    message = str(error.value)
    bad_epoch = int(re.search(r"(?:at|after|in) epoch (\d+)", message).group(1))
    assert bad_epoch >= 1  # epoch 0 was finite
    finite, state = _finite_checkpoint(cfg.run_dir / "checkpoints" / "last.ckpt")
    assert finite and state["epoch"] == bad_epoch - 1
    assert (f"{cfg.run_dir}/checkpoints/last.ckpt (after epoch {bad_epoch - 1}); "
            f"resume with: fgvc train --resume {cfg.run_dir}") in message
    status = RunFolder(cfg.run_dir).status()
    assert status["status"] == "failed" and f"epoch {bad_epoch}" in status["reason"]


def test_nan_in_the_first_epoch_says_there_is_no_checkpoint(tiny_overrides):
    cfg = load_config(None, tiny_overrides + ["optim.name=sgd", "optim.lr=1e6"])
    with pytest.raises(NonFiniteLossError) as error:
        train(cfg, progress=False)
    assert not (cfg.run_dir / "checkpoints" / "last.ckpt").exists()
    assert not (cfg.run_dir / "checkpoints" / "best.ckpt").exists()
    assert "On disk: no checkpoint" in str(error.value) and "start again with: fgvc train" in str(error.value)


def test_exploding_weights_with_a_finite_training_loss_are_never_kept(tiny_overrides):
    """The lr jumps by 1e30 near epoch 2 (timm steps it per batch): the last update of an epoch blows the
    weights up after every training loss of that epoch was finite. The guard stops the run before that
    epoch is checkpointed: what is on disk is the last finite epoch, with a finite validation loss."""
    cfg = load_config(None, tiny_overrides + ["train.epochs=4", "optim.name=sgd", "optim.lr=0.05",
                                              "schedule.name=multistep", "schedule.milestones=[2]",
                                              "schedule.gamma=1e30", "loss.name=label_smoothing"])
    with pytest.raises(NonFiniteLossError) as error:
        train(cfg, progress=False)
    found = re.search(r"^(validation loss is nan|weights became nan or inf) (?:after|in) epoch (\d+)", str(error.value))
    assert found, str(error.value)  # the weights/validation check stopped it, not a training loss
    bad_epoch = int(found.group(2))
    assert bad_epoch >= 1  # epoch 0 was finite
    finite, last = _finite_checkpoint(cfg.run_dir / "checkpoints" / "last.ckpt")
    assert finite and last["epoch"] == bad_epoch - 1
    finite, best = _finite_checkpoint(cfg.run_dir / "checkpoints" / "best.ckpt")
    assert finite and best["epoch"] <= bad_epoch - 1
    for state in (last, best):
        scores = [c["best_model_score"] for k, c in state["callbacks"].items()
                  if "ModelCheckpoint" in k and c.get("monitor")]  # best.ckpt's callback (last.ckpt's watches none)
        assert scores and all(torch.isfinite(torch.as_tensor(score)) for score in scores)


@pytest.fixture
def finished_run(tiny_overrides):
    cfg = load_config(None, tiny_overrides + ["train.epochs=2"])
    return train(cfg, progress=False).run_dir


@pytest.fixture
def killed_run(finished_run):
    """A run whose checkpoints are on disk and that did not finish (a finished run is not resumed)."""
    RunFolder(finished_run).set_status("failed", "killed")
    return finished_run


@pytest.mark.parametrize("damage", ["truncated", "empty"])
def test_resume_from_a_corrupt_checkpoint_is_one_clear_line(killed_run, damage):
    last = killed_run / "checkpoints" / "last.ckpt"
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 3] if damage == "truncated" else b"")
    with pytest.raises(CheckpointError, match=f"checkpoint {last} is {'unreadable' if damage == 'truncated' else 'empty'}"):
        resume(killed_run, progress=False)
    result = runner.invoke(app, ["train", "--resume", str(killed_run), "--no-progress"])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and str(last) in lines[0] and "--checkpoint best" in lines[0], result.output
    assert "Traceback" not in result.output and "Aborted" not in result.output


def test_resume_from_best_after_a_corrupt_last(killed_run):
    (killed_run / "checkpoints" / "last.ckpt").write_bytes(b"junk")
    result = runner.invoke(app, ["train", "--resume", str(killed_run), "--checkpoint", "best", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert RunFolder(killed_run).status()["status"] == "finished"


def test_resume_from_another_networks_checkpoint_is_one_clear_line(killed_run, tiny_overrides):
    other = train(load_config(None, tiny_overrides + ["model.name=resnet18", "output.name=other"]),
                  progress=False).run_dir
    last = killed_run / "checkpoints" / "last.ckpt"
    shutil.copyfile(other / "checkpoints" / "last.ckpt", last)  # a last.ckpt copied from another run
    with pytest.raises(CheckpointError, match=rf"{re.escape(str(last))} holds resnet18 from .* but .* expects "
                                              r"resnet10t with 3 classes .*another network"):
        resume(killed_run, progress=False)
    result = runner.invoke(app, ["train", "--resume", str(killed_run), "--no-progress"])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and str(last) in lines[0], result.output
    assert "without --resume" in lines[0] and f"fgvc train --resume {other}" in lines[0]
    assert "Traceback" not in result.output and "state_dict" not in result.output
    assert RunFolder(killed_run).status()["status"] == "failed"  # the refused resume changed nothing


def test_eval_predict_explain_ensemble_on_a_corrupt_checkpoint(finished_run, colour_data):
    best = finished_run / "checkpoints" / "best.ckpt"
    best.write_bytes(best.read_bytes()[:1000])
    (finished_run / "checkpoints" / "model.safetensors").unlink()  # else the best weights are read from it
    commands = {
        "eval": ["eval", str(finished_run)],
        "predict": ["predict", str(finished_run), str(colour_data / "test" / "red"), "--out", str(finished_run / "s.csv")],
        "explain": ["explain", str(finished_run), str(colour_data / "test" / "red")],
        # other test-time views than the saved predictions': the model is loaded (else they are read)
        "ensemble": ["ensemble", str(finished_run), str(finished_run), "--tta", "flip"],
    }
    for name, args in commands.items():
        result = runner.invoke(app, args)
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert result.exit_code == 2, (name, result.output)
        assert len(lines) == 1 and f"checkpoint {best} is unreadable" in lines[0], (name, result.output)
        assert "use the last checkpoint" in lines[0]
    assert not (finished_run / "explain").exists()


def test_bad_model_or_weights_fail_before_a_folder_is_claimed(tiny_overrides, tmp_path):
    bad_model = load_config(None, tiny_overrides + ["model.name=resnet_does_not_exist"])
    with pytest.raises(WeightsError, match="is not a timm model"):
        train(bad_model, progress=False)
    bad_file = load_config(None, tiny_overrides + ["model.pretrained=true", f"model.pretrained_file={tmp_path / 'no.pth'}"])
    with pytest.raises(WeightsError, match="weights file not found"):
        train(bad_file, progress=False)
    assert not bad_model.run_dir.exists()
    good = train(load_config(None, tiny_overrides), progress=False)
    assert good.run_dir.name == "run"  # not pushed to run-2 by the failures


def jpeg_damaged_inside() -> bytes:
    """A JPEG whose entropy data is broken in the middle, its header and end marker intact: PIL opens
    and verifies it, and fails only when it decodes it."""
    import io

    import numpy as np
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (24, 24, 3), np.uint8)).save(buffer, "JPEG")
    data = bytearray(buffer.getvalue())
    start = data.index(b"\xff\xda") + 14  # after the start-of-scan header
    half = (len(data) - 2 - start) // 2
    data[start + half: start + half + half // 2 * 2] = b"\xff" * (half // 2 * 2)
    return bytes(data)


def test_a_run_that_fails_later_records_why(tiny_overrides, colour_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(colour_data, data)
    victim = sorted((data / "train" / "red").iterdir())[0]
    victim.write_bytes(jpeg_damaged_inside())  # what the check before training lets through (data/readable.py)
    cfg = load_config(None, [o.replace(str(colour_data), str(data)) for o in tiny_overrides])
    with pytest.raises(FgvcError, match="cannot read image"):
        train(cfg, progress=False)
    status = RunFolder(cfg.run_dir).status()
    assert status["status"] == "failed" and str(victim) in status["reason"]
    assert json.loads((cfg.run_dir / "run.json").read_text()) == status


def test_pretrained_file_without_pretrained_is_rejected():
    with pytest.raises(FgvcError, match="model.pretrained_file is set .* but model.pretrained is false"):
        load_config(None, ["model.pretrained=false", "model.pretrained_file=weights.pth"])


def test_warmup_as_long_as_training_is_rejected_by_the_schema(tmp_path):
    with pytest.raises(FgvcError, match=r"schedule.warmup_epochs \(1.0\) must be less than train.epochs \(1\)"):
        load_config(None, ["train.epochs=1", "schedule.warmup_epochs=1"])
    (tmp_path / "exp.yaml").write_text("train: {epochs: 1}\nschedule: {warmup_epochs: 1}\n")
    result = runner.invoke(app, ["config", "show", str(tmp_path / "exp.yaml")])
    assert result.exit_code == 2 and "must be less than train.epochs" in result.output

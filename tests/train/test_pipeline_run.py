"""Training as a 2-stage pipeline (2 CPU processes, gloo): the same loss curve as a single-process run
of the same config (a ViT: LayerNorm does not see the micro-batch size; same data order), a run folder
whose checkpoint loads into the whole model, frozen stages, and clear refusals."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from builders import history_rows

from fgvc.config import load_config
from fgvc.errors import ConfigError
from fgvc.evaluate.runs import load_trained
from fgvc.runfolder import RunFolder
from fgvc.train.run import resume, train

PIPELINE = ["train.engine=pipeline", "train.pipeline.stages=2", "train.pipeline.microbatches=3",
            "train.pipeline.split=equal", "train.threads=1"]


@pytest.fixture
def vit(colour_data, tmp_path):
    return ["data.name=image_folder", f"data.root={colour_data / 'train'}", f"data.test_root={colour_data / 'test'}",
            "data.val_fraction=0.25", "data.num_workers=0", "data.transforms.resize=32", "data.transforms.crop=32",
            "data.transforms.hflip=0", "model.name=vit_tiny_patch16_224", "model.img_size=32",
            "model.pretrained=false", "train.epochs=2", "train.batch_size=12", "optim.lr=0.001",
            "schedule.name=cosine", "strategy.name=full", f"output.dir={tmp_path}", "train.threads=1"]


def history(run_dir):
    with (run_dir / "history.csv").open() as handle:
        return list(csv.DictReader(handle))


def test_two_stage_vit_matches_a_single_process_run(vit):
    single = train(load_config(None, vit + ["output.name=single"]), progress=False)
    piped = train(load_config(None, vit + PIPELINE + ["output.name=piped"]), progress=False)
    a, b = history(single.run_dir), history(piped.run_dir)
    assert len(a) == len(b) == 2
    for key in ("train/loss", "val/loss", "lr"):  # stated tolerance: float rounding of micro-batch sums
        assert [float(r[key]) for r in b] == pytest.approx([float(r[key]) for r in a], rel=1e-4, abs=1e-6)
    assert piped.test["top1"] == pytest.approx(single.test["top1"], abs=1e-6)
    run = load_trained(piped.run_dir)  # the pipeline's checkpoint is the whole model's
    whole = torch.load(piped.run_dir / "checkpoints" / "best.ckpt", weights_only=False)["state_dict"]
    assert set(whole) == {f"model.{k}" for k in run.model.state_dict()}
    assert (piped.run_dir / "report.html").is_file() and (piped.run_dir / "README.md").is_file()


def test_a_frozen_first_stage_does_no_backward_and_stays_as_loaded(vit, tmp_path):
    cfg = load_config(None, vit + PIPELINE + ["strategy.name=partial", "strategy.unfreeze_last=1",
                                              "train.epochs=1", "output.name=frozen"])
    result = train(cfg, progress=False)
    trained = load_trained(result.run_dir).model.state_dict()
    import lightning as L

    from fgvc.data import load_data
    from fgvc.models.assembly import build_network

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    start, _ = build_network(cfg, load_data(cfg.data).num_classes)
    assert torch.equal(trained["patch_embed.proj.weight"], start.state_dict()["patch_embed.proj.weight"])
    assert not torch.equal(trained["head.weight"], start.state_dict()["head.weight"])


def test_pipeline_refusals_name_the_setting(vit):
    with pytest.raises(ConfigError, match="pipeline cannot be combined with data.mixup, train.ema_decay"):
        load_config(None, vit + PIPELINE + ["data.mixup.mixup_alpha=0.2", "train.ema_decay=0.99"])
    with pytest.raises(ConfigError, match=r"batch_size \(12\) must split into train.pipeline.microbatches \(5\)"):
        load_config(None, vit + PIPELINE + ["train.pipeline.microbatches=5"])
    with pytest.raises(ConfigError, match="99 pipeline stages for a model of 14 blocks"):
        train(load_config(None, vit + PIPELINE + ["train.pipeline.stages=99"]), progress=False)


def test_a_killed_pipeline_run_resumes_to_the_uninterrupted_result(vit, tmp_path):
    """kill -9 of the whole process group (the driver and its stages) once the first epoch's checkpoint is
    on disk, then --resume: the same history and test metrics as the run that was never killed (optimizer
    state, cuts, dropout)."""
    sets = vit + PIPELINE + ["train.epochs=3", "model.drop_rate=0.2", "schedule.warmup_epochs=1"]
    whole = train(load_config(None, sets + ["output.name=whole"]), progress=False)
    config = tmp_path / "killed.yaml"
    config.write_text(load_config(None, sets + ["output.name=killed"]).to_yaml())
    fgvc = str(Path(sys.executable).parent / "fgvc")
    proc = subprocess.Popen([fgvc, "train", str(config), "--no-progress"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    folder = RunFolder(tmp_path / "killed")
    deadline = time.time() + 180
    # the checkpoint appears whole (written aside, then renamed); the kill follows it within a poll, and
    # two more epochs (each trained, validated and checkpointed twice) cannot fit in one
    while not folder.last_checkpoint.is_file() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    assert proc.poll() is None, f"the run ended (status {proc.returncode}) before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    assert folder.last_checkpoint.is_file()
    assert 1 <= len(history(folder.path)) < 3, "the run had finished its epochs when it was killed"
    resumed = resume(folder.path, progress=False)
    assert history_rows(resumed.run_dir) == history_rows(whole.run_dir)
    assert resumed.test["top1"] == whole.test["top1"] and resumed.test["ece"] == whole.test["ece"]
    assert RunFolder(resumed.run_dir).status()["status"] == "finished"

"""Resume is exact: a run killed after an epoch and resumed ends where the uninterrupted run ends, for
every strategy, with EMA off and (for three of them) on, with data-loader worker processes (they prefetch at creation)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from builders import KillAtEpoch, write_colour_config
from builders import history_rows as history

from fgvc.config import load_config
from fgvc.runfolder import RunFolder
from fgvc.train.run import resume, train

VIT = ["model.name=vit_tiny_patch16_224", "model.img_size=32", "data.transforms.resize=32", "data.transforms.crop=32"]
STRATEGIES = {
    "full": [],
    "linear": ["optim.lr=0.02"],
    "partial": ["strategy.unfreeze_last=1"],
    "gradual": ["strategy.unfreeze_every=1"],
    "attention": VIT + ["optim.lr=0.003"],
    "lora": VIT + ["optim.lr=0.01", "strategy.lora_rank=4"],
}


# every strategy without EMA; EMA where the trained parameters differ most in kind: a part of the
# network, a set that grows each epoch (gradual), adapters (LoRA)
CASES = [(name, False) for name in STRATEGIES] + [(name, True) for name in ("partial", "gradual", "lora")]


@pytest.mark.parametrize("strategy, ema", CASES, ids=[f"{s}-{'ema' if e else 'no-ema'}" for s, e in CASES])
def test_resume_after_kill_is_exact(tiny_overrides, strategy, ema):
    sets = tiny_overrides + STRATEGIES[strategy] + [
        f"strategy.name={strategy}", "train.epochs=3", "schedule.name=cosine", "schedule.warmup_epochs=1",
        "data.transforms.hflip=0.5", "model.drop_rate=0.2", "data.num_workers=2"]
    if ema:
        sets.append("train.ema_decay=0.9")
    whole = train(load_config(None, sets + ["output.name=whole"]), progress=False)
    killed_cfg = load_config(None, sets + ["output.name=killed"])
    with pytest.raises(RuntimeError, match="killed"):
        train(killed_cfg, callbacks=[KillAtEpoch(1)], progress=False)
    assert len(history(killed_cfg.run_dir)) == 1
    assert RunFolder(killed_cfg.run_dir).status()["status"] == "failed"
    resumed = resume(killed_cfg.run_dir, progress=False)
    assert history(resumed.run_dir) == history(whole.run_dir)
    assert resumed.test["top1"] == whole.test["top1"] and resumed.test["ece"] == whole.test["ece"]
    assert resumed.test["confusion_matrix"] == whole.test["confusion_matrix"]
    assert RunFolder(resumed.run_dir).status()["status"] == "finished"


def test_features_probe_reruns_cleanly(tiny_overrides):
    sets = tiny_overrides + ["train.engine=probe", "train.epochs=5", "optim.lr=0.05"]
    first = train(load_config(None, sets + ["output.name=a"]), progress=False)
    again = train(load_config(None, sets + ["output.name=b"]), progress=False)
    assert history(first.run_dir) == history(again.run_dir)
    assert first.test["top1"] == again.test["top1"]


def test_resume_does_not_warn_about_its_own_checkpoint_folder(tiny_overrides, recwarn):
    cfg = load_config(None, tiny_overrides + ["train.epochs=2"])
    with pytest.raises(RuntimeError):
        train(cfg, callbacks=[KillAtEpoch(1)], progress=False)
    resume(cfg.run_dir, progress=False)
    assert not [w for w in recwarn if "exists and is not empty" in str(w.message)]


def _start_cli_run(config_path, env):
    fgvc = Path(sys.executable).parent / "fgvc"
    return subprocess.Popen([str(fgvc), "train", str(config_path), "--no-progress"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)


# to the run's process, or to its whole process group (data-loader workers included), as a terminal's
# Ctrl-C, a scheduler's cancel or `kill -- -PGID` send it
@pytest.mark.parametrize("signum,code,group", [(signal.SIGTERM, 143, False), (signal.SIGINT, 130, False),
                                               (signal.SIGTERM, 143, True), (signal.SIGINT, 130, True)],
                         ids=["SIGTERM", "SIGINT", "SIGTERM-group", "SIGINT-group"])
def test_a_signal_stops_the_run_promptly_and_says_how_to_resume(colour_data, tmp_path, signum, code, group):
    config = write_colour_config(tmp_path / "exp.yaml", colour_data, tmp_path / "runs", workers=2, epochs=200,
                                 batch_size=4)
    proc = _start_cli_run(config, {**os.environ, "COLUMNS": "1000"})
    folder = RunFolder(tmp_path / "runs" / "exp")
    deadline = time.time() + 120
    while not folder.last_checkpoint.is_file() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert folder.last_checkpoint.is_file()
    time.sleep(0.3)
    if group:
        os.killpg(proc.pid, signum)
    else:
        proc.send_signal(signum)
    output = proc.communicate(timeout=30)[0]
    assert proc.returncode == code, output
    stop_line = next(line for line in output.splitlines() if line.startswith("error: stopped by"))
    assert f"stopped by {signal.Signals(signum).name} in epoch" in stop_line
    assert f"{folder.path}/checkpoints/last.ckpt (after epoch" in stop_line
    assert f"resume with: fgvc train --resume {folder.path}" in stop_line
    assert "Traceback" not in output
    assert folder.status()["status"] == "stopped"
    assert len(folder.history()) < 200
    for _ in range(50):  # data-loader workers go with the run
        children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        if not children:
            break
        time.sleep(0.1)
    assert not children


# a run in its own process that kills itself (kill -9) after batch 3 of epoch 1: always after epoch 0's
# checkpoint, never after the run's end, however fast the machine
KILLED_RUN = ("import sys; sys.path.insert(0, sys.argv[2]); from builders import SigkillAt; "
              "from fgvc.config import load_config; from fgvc.train.run import train; "
              "train(load_config(sys.argv[1]), callbacks=[SigkillAt(epoch=1, batch=3)], progress=False)")


def test_resume_after_kill_9_in_another_process_matches(colour_data, tmp_path):
    """The demo's failure: a real `kill -9` mid-epoch, with workers, then `fgvc train --resume`."""
    def write(name):
        return write_colour_config(tmp_path / f"{name}.yaml", colour_data, tmp_path / "runs", workers=2, epochs=3,
                                   batch_size=4, hflip=0.5, strategy="{name: partial, unfreeze_last: 2}",
                                   schedule="{name: cosine, warmup_epochs: 1}")

    env = {**os.environ, "COLUMNS": "1000"}
    whole = _start_cli_run(write("whole"), env)
    assert whole.wait(timeout=300) == 0
    killed = subprocess.run([sys.executable, "-c", KILLED_RUN, str(write("killed")), str(Path(__file__).parents[1])],
                            capture_output=True, text=True, env=env, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    folder = RunFolder(tmp_path / "runs" / "killed")
    assert [int(row["epoch"]) for row in folder.history()] == [0]
    assert folder.last_checkpoint.is_file()
    resumed = subprocess.run([str(Path(sys.executable).parent / "fgvc"), "train", "--resume", str(folder.path),
                              "--no-progress"], capture_output=True, text=True, env=env)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert history(folder.path) == history(tmp_path / "runs" / "whole")

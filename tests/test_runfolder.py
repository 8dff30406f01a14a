"""The run folder: atomic claims under concurrency, status, and the prediction CSV round trip."""

import json
import multiprocessing as mp
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from builders import write_colour_config

from fgvc.data.images import ImageList
from fgvc.evaluate.predict import write_predictions_csv
from fgvc.runfolder import RunFolder, RunFolderError


def _claim(base, barrier, queue):
    barrier.wait()
    queue.put(str(RunFolder.claim(Path(base)).path))


def test_processes_started_together_claim_distinct_folders(tmp_path):
    ctx = mp.get_context("fork")
    barrier, queue = ctx.Barrier(8), ctx.Queue()
    workers = [ctx.Process(target=_claim, args=(tmp_path / "runs" / "exp", barrier, queue)) for _ in range(8)]
    for w in workers:
        w.start()
    claimed = [queue.get(timeout=30) for _ in workers]
    for w in workers:
        w.join(timeout=30)
    assert len(set(claimed)) == 8
    assert sorted(Path(p).name for p in claimed) == sorted(["exp"] + [f"exp-{n}" for n in range(2, 9)])
    for path in claimed:
        assert json.loads((Path(path) / "run.json").read_text())["status"] == "claimed"


def test_a_folder_of_an_older_run_is_skipped_and_an_empty_one_reused(tmp_path):
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "config.yaml").write_text("seed: 1\n")  # a run from before run.json
    (tmp_path / "exp-2").mkdir()  # an empty folder holds no run
    assert RunFolder.claim(tmp_path / "exp").path.name == "exp-2"
    assert RunFolder.claim(tmp_path / "exp").path.name == "exp-3"


def test_cli_trains_started_together_get_their_own_folders(colour_data, tmp_path):
    """Three `fgvc train` of one config at once: three folders, each with its own complete run."""
    config = write_colour_config(tmp_path / "exp.yaml", colour_data, tmp_path / "runs")
    fgvc = Path(sys.executable).parent / "fgvc"
    env = {**os.environ, "COLUMNS": "1000"}  # one line per message
    procs = [subprocess.Popen([str(fgvc), "train", str(config), "--no-progress"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, env=env) for _ in range(3)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    folders = sorted(line.split("run folder: ")[1].strip() for out in outputs for line in out.splitlines()
                     if "run folder: " in line)
    assert [Path(f).name for f in folders] == ["exp", "exp-2", "exp-3"]
    for folder in folders:
        run = RunFolder(folder)
        assert run.status()["status"] == "finished"
        assert run.metrics()["run_dir"] == folder


def test_exclusive_refuses_a_second_holder(tmp_path):
    folder = RunFolder.claim(tmp_path / "exp")
    with folder.exclusive():
        code = ("from fgvc.runfolder import RunFolder\n"
                f"with RunFolder({str(folder.path)!r}).exclusive(): pass\n")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert out.returncode != 0 and "is in use by another fgvc process" in out.stderr
    with folder.exclusive():  # released: the same process takes it again
        pass


def test_status_records_reason_and_predictions_round_trip(tmp_path):
    folder = RunFolder.claim(tmp_path / "exp")
    folder.set_status("failed", "boom")
    assert folder.status()["status"] == "failed" and folder.status()["reason"] == "boom"
    folder.set_status("finished")
    assert "reason" not in folder.status()
    images = ImageList(["a", "b", "c"], np.array([0, 2]), paths=[Path("x.png"), Path("y.png")])
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3]])
    write_predictions_csv(folder.predictions_file("test"), images, probs)
    rows = folder.predictions("test")
    assert [r.image for r in rows] == ["x.png", "y.png"]
    assert [(r.target, r.predicted, r.right) for r in rows] == [(0, 0, True), (2, 1, False)]
    assert rows[1].probs == pytest.approx((0.1, 0.6, 0.3)) and rows[1].target_name == "c"


def test_require_and_missing_files_are_clear(tmp_path):
    with pytest.raises(RunFolderError, match="run folder not found"):
        RunFolder(tmp_path / "nope").require()
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunFolderError, match="is not a run folder"):
        RunFolder(tmp_path / "empty").require()
    with pytest.raises(RunFolderError, match="has no predictions_test.csv"):
        RunFolder(tmp_path / "empty").predictions("test")

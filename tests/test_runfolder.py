"""The run folder: atomic claims under concurrency, status, and the prediction CSV round trip; the group
folder and the synthetic folder: their layout names the files the library writes."""

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
from fgvc.groupfolder import GroupFolder, SyntheticFolder
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


def test_group_folder_names_the_files_a_group_writes(tmp_path):
    """A repeat group written by the library's own functions: every file is where GroupFolder says."""
    from PIL import Image

    from fgvc.config import load_config
    from fgvc.experiments.groups import read_group, summarize_group, write_group
    from fgvc.report.html import group_report

    group = GroupFolder(tmp_path / "g")
    names = [GroupFolder.seed_member(s) for s in (1, 2, 3)]
    assert names == ["seed-1", "seed-2", "seed-3"] and GroupFolder.fold_member(0) == "fold-0"
    write_group(group.path, "repeat", load_config(), {n: {"seed": s} for n, s in zip(names, (1, 2, 3))})
    assert group.group_file.is_file() and list(read_group(group.path)["members"]) == names
    for top1, name in zip((0.7, 0.8, 0.75), names):
        member = group.member(name)
        member.path.mkdir()
        member.metrics_file.write_text(json.dumps({"test": {"top1": top1, "n": 10}, "train_seconds": 1.0}))
        member.history_file.write_text("epoch,train/loss,val/loss,val/top1\n0,1.0,1.1,0.5\n1,0.8,0.9,0.6\n")
        member.report_file.write_text("<html></html>")  # the member's own report is not this test's
    assert member.path == group.path / "seed-3" and member.metrics()["test"]["top1"] == 0.75
    summary = summarize_group(group.path)
    assert json.loads(group.summary_file.read_text()) == summary
    assert group_report(group.path) == group.report_file
    assert group.report_file.read_text().count(f"href='seed-1/{RunFolder.REPORT}'") == 1
    with Image.open(group.members_plot("test")) as plot:
        assert plot.format == "PNG" and group.members_plot("test").name == "test_members.png"
    assert group.curves_plot.is_file()
    written = sorted(p.name for p in group.path.iterdir() if p.is_file())
    assert written == sorted(p.name for p in (group.group_file, group.summary_file, group.report_file,
                                                  group.members_plot("test"), group.members_plot("time"),
                                                  group.curves_plot))


def test_group_folder_layout_of_sweeps_studies_searches_and_ensembles(tmp_path):
    folder = GroupFolder(tmp_path / "s")
    assert folder.arms_dir == folder.path / "arms" and folder.study_file.name == "study.json"
    assert folder.tables_file.name == "tables.md" and folder.sweep_file.name == "sweep.json"
    assert folder.search_file.name == "search.json" and folder.best_config.name == "best.yaml"
    assert folder.trial_dir("ab12") == folder.path / "trials" / "trial-ab12" and folder.tune_dir.name == "tune"
    assert folder.confirm_start == folder.path / "confirm" / "start"
    assert folder.confirm_best == folder.path / "confirm" / "best"
    # an ensemble's predictions have a run's name and format, so a run's reader reads them
    assert folder.predictions_file("val").name == RunFolder(folder.path).predictions_file("val").name
    images = ImageList(["a", "b"], np.array([1]), paths=[Path("x.png")])
    folder.path.mkdir()
    write_predictions_csv(folder.predictions_file("val"), images, torch.tensor([[0.3, 0.7]]))
    assert RunFolder(folder.path).predictions("val")[0].right


def test_synthetic_folder_is_what_the_writer_writes_and_the_data_set_reads(tmp_path):
    from PIL import Image

    from fgvc.data.sources.synthetic import load_synthetic
    from fgvc.generate.writer import SyntheticImage, write_synthetic

    folder = SyntheticFolder(tmp_path / "syn")
    manifest = write_synthetic([SyntheticImage(Image.new("RGB", (8, 8), c), label, "gan")
                                for c, label in (("red", "a"), ("blue", "b"))], folder.path)
    assert manifest == folder.manifest_file
    assert manifest.read_text().splitlines()[0].split(",") == list(SyntheticFolder.MANIFEST_COLUMNS)
    assert list(load_synthetic(folder.path, ["a", "b"]).labels) == [0, 1]

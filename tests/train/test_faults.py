"""No fault destroys a good checkpoint, and each says so in one line: a full disk (a real full tmpfs, or
a real file-size limit), a read-only output folder, a resume of a finished run, a stop between an
epoch's history row and its checkpoint."""

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
from builders import KillAtEpoch, history_rows, write_colour_config
from typer.testing import CliRunner

from fgvc.cli import app
from fgvc.config import load_config
from fgvc.errors import FgvcError
from fgvc.runfolder import RunFolder, RunFolderError
from fgvc.trust import read_checkpoint
from fgvc.train.run import resume, train

runner = CliRunner()
FGVC = str(Path(sys.executable).parent / "fgvc")
# gradual unfreezing: the optimizer holds more state once more of the network trains, so epoch 2's
# checkpoint is larger than epochs 0 and 1's, and a limit between the two sizes fails epoch 2 only
GRADUAL = "{name: gradual, unfreeze_every: 1}"


def _one_error_line(output: str) -> str:
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in output, output
    return errors[0]


class CheckpointSizes(L.Callback):
    """last.ckpt's size as each epoch starts (so: the size of every earlier epoch's checkpoint)."""

    def __init__(self):
        self.sizes: dict[int, int] = {}

    def on_train_epoch_start(self, trainer, pl_module):
        last = RunFolder(trainer.default_root_dir).last_checkpoint
        if last.is_file():
            self.sizes[trainer.current_epoch - 1] = last.stat().st_size


@pytest.fixture(scope="module")
def uninterrupted(colour_data, tmp_path_factory):
    """The 3-epoch run uninterrupted, with its checkpoints' sizes: (config file, run folder, sizes)."""
    root = tmp_path_factory.mktemp("full-disk")
    config = write_colour_config(root / "exp.yaml", colour_data, root / "runs", epochs=3, strategy=GRADUAL)
    sizes = CheckpointSizes()
    result = train(load_config(config, [f"output.dir={root / 'whole'}"]), callbacks=[sizes], progress=False)
    sizes.sizes[2] = result.run_dir.joinpath("checkpoints", "last.ckpt").stat().st_size
    assert sizes.sizes[2] > sizes.sizes[1], sizes.sizes  # the premise of the file-size limit
    return config, result.run_dir, sizes.sizes


@pytest.fixture
def tmpfs(tmp_path):
    """mount(size) -> a fresh tmpfs of that size, unmounted afterwards; skips where mounting is refused."""
    mounted = []

    def mount(size: int) -> Path:
        point = tmp_path / f"tmpfs{len(mounted)}"
        point.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)],
                              check=False, capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=False)


@pytest.mark.parametrize("fault", ["full tmpfs", "file-size limit"])
def test_a_full_disk_keeps_the_last_good_checkpoint_and_says_how_to_resume(uninterrupted, tmp_path, tmpfs, fault):
    config, whole, sizes = uninterrupted
    if fault == "full tmpfs":  # room for epoch 1's checkpoint beside two older ones (at most S0 + 2 S1), not for
        runs = tmpfs(sizes[0] + sizes[1] + (sizes[1] + sizes[2]) // 2)  # epoch 2's (at least S0 + S1 + S2)
        limit = None
    else:
        runs, limit = tmp_path / "runs", (sizes[1] + sizes[2]) // 2

    def file_size_limit():  # in the child: writes past `limit` bytes fail with EFBIG (the signal ignored)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    env = {**os.environ, "COLUMNS": "1000"}
    done = subprocess.run([FGVC, "train", str(config), "--set", f"output.dir={runs}", "--no-progress"],
                          check=False, capture_output=True, text=True, env=env, timeout=300,
                          preexec_fn=file_size_limit if limit else None)
    folder = RunFolder(runs / "exp")
    assert done.returncode == 2, done.stdout + done.stderr
    line = _one_error_line(done.stderr)
    failed = [path for path in (folder.checkpoint("best"), folder.last_checkpoint)
              if f"could not write {path} after epoch 2:" in line]
    assert len(failed) == 1, line
    assert ("[ENOSPC]" if limit is None else "[EFBIG]") in line, line
    assert f"On disk: {folder.last_checkpoint} (after epoch 1)" in line
    assert f"resume with: fgvc train --resume {folder.path}" in line
    assert read_checkpoint(folder.last_checkpoint)["epoch"] == 1  # intact, loadable, the earlier epoch
    assert not list(folder.checkpoints.glob("*.tmp"))
    status = folder.status()
    assert status["status"] == "failed" and f"could not write {failed[0]}" in status["reason"]

    if limit is None:  # room made on the disk, as the message asks
        subprocess.run(["mount", "-o", f"remount,size={4 * sizes[2]}", str(runs)], check=True)
    resumed = runner.invoke(app, ["train", "--resume", str(folder.path), "--no-progress"])
    assert resumed.exit_code == 0, resumed.output
    assert folder.status()["status"] == "finished"
    assert history_rows(folder.path) == history_rows(whole)
    assert folder.metrics()["test"]["top1"] == RunFolder(whole).metrics()["test"]["top1"]


@pytest.fixture
def unwritable(tmp_path):
    """A folder fgvc cannot write in: chmod 0o555 for a user; as root (whom modes do not stop) a read-only
    tmpfs where mounting is allowed, else a path under a regular file."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
    elif subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)],
                        check=False, capture_output=True).returncode == 0:
        yield folder
        subprocess.run(["umount", "-l", str(folder)], check=False)
    else:
        (tmp_path / "a-file").write_text("")
        yield tmp_path / "a-file" / "runs"


def test_an_unwritable_output_folder_is_one_line_before_any_work(tiny_overrides, unwritable, tmp_path):
    # a data root that does not exist: had data loading come first, its error would be the one raised
    sets = tiny_overrides + [f"output.dir={unwritable}", f"data.root={tmp_path / 'no-data'}"]
    with pytest.raises(RunFolderError, match=f"cannot write in {unwritable}"):
        train(load_config(None, sets), progress=False)
    config = write_colour_config(tmp_path / "exp.yaml", tmp_path / "no-data", unwritable)
    result = runner.invoke(app, ["train", str(config), "--no-progress"], env={"COLUMNS": "1000"})
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and f"cannot write in {unwritable}" in lines[0] and "output.dir" in lines[0], result.output


def test_resume_of_a_finished_run_is_refused_in_one_line(tiny_overrides):
    run = train(load_config(None, tiny_overrides), progress=False).run_dir
    metrics = (run / "metrics.json").stat().st_mtime_ns
    with pytest.raises(FgvcError, match=r"finished at epoch 2/2 \(run.json: finished\); nothing to resume"):
        resume(run, progress=False)
    result = runner.invoke(app, ["train", "--resume", str(run), "--no-progress"], env={"COLUMNS": "1000"})
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and f"{run} finished at epoch 2/2" in lines[0], result.output
    assert "start a new run" in lines[0].lower() and "train.epochs" in lines[0]
    assert (run / "metrics.json").stat().st_mtime_ns == metrics and RunFolder(run).status()["status"] == "finished"


class HistoryAtStart(L.Callback):
    """The epochs history.csv holds when each epoch starts."""

    def __init__(self):
        self.seen: list[list[int]] = []

    def on_train_epoch_start(self, trainer, pl_module):
        self.seen.append([int(row["epoch"]) for row in RunFolder(trainer.default_root_dir).history()])


def test_a_stop_between_a_history_row_and_its_checkpoint_is_said_and_repaired(tiny_overrides, capsys):
    first = load_config(None, tiny_overrides + ["output.name=first"])
    with pytest.raises(RuntimeError, match="killed"):
        train(first, callbacks=[KillAtEpoch(0, after_history_row=True)], progress=False)
    assert [int(r["epoch"]) for r in RunFolder(first.run_dir).history()] == [0]
    assert not RunFolder(first.run_dir).last_checkpoint.exists()
    with pytest.raises(FgvcError, match=r"no checkpoints/last.ckpt \(history.csv records epoch 0, but the run "
                                        r"stopped before that epoch's checkpoint was written\)"):
        resume(first.run_dir, progress=False)

    whole = train(load_config(None, tiny_overrides + ["output.name=whole"]), progress=False)
    second = load_config(None, tiny_overrides + ["output.name=second"])
    with pytest.raises(RuntimeError, match="killed"):
        train(second, callbacks=[KillAtEpoch(1, after_history_row=True)], progress=False)
    folder = RunFolder(second.run_dir)
    assert [int(r["epoch"]) for r in folder.history()] == [0, 1]
    assert read_checkpoint(folder.last_checkpoint)["epoch"] == 0
    capsys.readouterr()
    seen = HistoryAtStart()
    resumed = resume(folder.path, callbacks=[seen], progress=False)
    said = capsys.readouterr().err
    assert (f"resuming {folder.path} from checkpoints/last.ckpt (after epoch 0); history.csv also records epoch 1, "
            "whose checkpoint was not written") in said, said
    assert seen.seen == [[0]]  # history matches last.ckpt as soon as the resumed run starts
    assert history_rows(folder.path) == history_rows(whole.run_dir)  # one row per epoch, the same values
    assert resumed.test["top1"] == whole.test["top1"]
    assert resumed.test["confusion_matrix"] == whole.test["confusion_matrix"]


def test_last_ckpt_is_written_after_every_epoch_not_only_when_the_monitor_improves(tiny_overrides):
    """A head whose steps are too small to move a float32 weight, on a frozen backbone: val/loss is the same
    every epoch, so best.ckpt stays at epoch 0, while last.ckpt follows the epochs (a resume goes on from
    the last epoch, not the best)."""
    cfg = load_config(None, tiny_overrides + ["strategy.name=linear", "optim.lr=1e-30", "train.epochs=3",
                                              "train.monitor=val/loss", "output.name=flat"])
    with pytest.raises(RuntimeError, match="killed"):
        train(cfg, callbacks=[KillAtEpoch(2)], progress=False)
    folder = RunFolder(cfg.run_dir)
    losses = {row["val/loss"] for row in folder.history()}
    assert len(folder.history()) == 2 and len(losses) == 1, losses  # the monitor did not improve after epoch 0
    assert read_checkpoint(folder.checkpoint(RunFolder.BEST))["epoch"] == 0
    assert read_checkpoint(folder.last_checkpoint)["epoch"] == 1

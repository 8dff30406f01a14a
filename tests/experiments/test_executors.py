"""The ray executor against the local one on the tiny colour fixture: same folders, same metrics,
a killed worker retried and resumed, storage and resource checks. Real training, real Ray (those tests
skip without Ray; what fgvc says when Ray is missing is checked with or without it)."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fgvc.config import load_config
from fgvc.errors import ConfigError, FgvcError
from fgvc.experiments.executors import LocalExecutor, executor_settings, make_executor
from fgvc.experiments.repeat import repeat
from fgvc.experiments.sweep import sweep
from fgvc.runfolder import RunFolder


def quiet(_):
    pass


@pytest.fixture(scope="module")
def ray_cluster():
    """Ray, with one local instance for the module (the executor reuses a connection it finds); the
    test skips without Ray."""
    ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'fgvc[ray]'")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="error")
    yield ray
    ray.shutdown()


def ray_executor(**settings):
    return make_executor(executor_settings(None, "ray", cpus_per_trial=1, **settings))


def run_files(run_dir):
    return sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*")
                  if p.is_file() and ".lock" not in p.name)


def test_ray_repeat_writes_the_same_folders_and_metrics_as_local(tiny_overrides, tmp_path, ray_cluster):
    # CPU results depend on the torch thread count in the last bits: pinned, the executors agree exactly;
    # a fine-grained method with its own random training augmentation (WS-DAN's crops and drops) too
    cfg = load_config(None, tiny_overrides + ["train.threads=1", "method.name=wsdan", "method.wsdan.attentions=4"])
    local = repeat(cfg, [1, 2], tmp_path / "local", log=quiet)
    remote = repeat(cfg, [1, 2], tmp_path / "ray", log=quiet, executor=ray_executor())
    assert remote["members"] == local["members"] == ["seed-1", "seed-2"]
    for split in ("val", "test"):
        assert set(remote["metrics"][split]) == set(local["metrics"][split]) >= {"top1", "f1_macro", "ece"}
        for metric, stats in local["metrics"][split].items():
            assert remote["metrics"][split][metric]["mean"] == pytest.approx(stats["mean"], abs=1e-6), metric
    for seed in (1, 2):
        a, b = tmp_path / "local" / f"seed-{seed}", tmp_path / "ray" / f"seed-{seed}"
        assert run_files(a) == run_files(b)
        local_metrics, ray_metrics = (json.loads((d / "metrics.json").read_text()) for d in (a, b))
        assert ray_metrics["test"] == local_metrics["test"] and ray_metrics["val"] == local_metrics["val"]
    assert (tmp_path / "ray" / "summary.json").is_file() and (tmp_path / "ray" / "report.html").is_file()


def test_ray_sweep_reuses_finished_runs_without_starting_ray(tiny_overrides, tmp_path, ray_cluster):
    cfg = load_config(None, tiny_overrides + ["train.epochs=1"])
    first = sweep(cfg, {"optim.lr": [0.01, 0.03]}, [1, 2], tmp_path / "s", log=quiet, executor=ray_executor())
    assert first["cells"] == [str(tmp_path / "s" / "optim.lr=0.01"), str(tmp_path / "s" / "optim.lr=0.03")]
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "s").rglob("metrics.json")}
    assert len(stamps) == 4
    messages = []
    sweep(cfg, {"optim.lr": [0.01, 0.03]}, [1, 2], tmp_path / "s", log=messages.append, executor=ray_executor())
    assert sorted(messages) == [f"optim.lr={lr}/seed-{s}: finished earlier, reused" for lr in (0.01, 0.03)
                                for s in (1, 2)]
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


def test_a_killed_ray_worker_is_retried_and_resumes_to_the_same_result(tiny_overrides, tmp_path, ray_cluster):
    overrides = tiny_overrides + ["train.epochs=6", "train.threads=1"]
    cfg = load_config(None, overrides)
    member = tmp_path / "ray" / "seed-3"
    outcome = {}
    thread = threading.Thread(target=lambda: outcome.update(
        summary=repeat(cfg, [3], tmp_path / "ray", log=quiet, executor=ray_executor())))
    thread.start()
    deadline = time.time() + 120
    while not (member / "checkpoints" / "last.ckpt").is_file() and time.time() < deadline:
        time.sleep(0.05)
    killed = RunFolder(member).status()["pid"]
    assert killed != os.getpid()  # the run trains in a Ray worker, not here
    os.kill(killed, signal.SIGKILL)
    thread.join(timeout=300)
    assert "summary" in outcome, "the repeat did not finish after its worker was killed"
    assert RunFolder(member).status()["pid"] != killed  # a new worker finished it
    assert RunFolder(member).status()["status"] == "finished"
    repeat(cfg, [3], tmp_path / "local", log=quiet)
    resumed, uninterrupted = (json.loads((d / "metrics.json").read_text())
                              for d in (member, tmp_path / "local" / "seed-3"))
    assert resumed["test"] == uninterrupted["test"]  # resume is exact
    history = RunFolder(member).history()
    assert [int(row["epoch"]) for row in history] == list(range(len(history)))  # no epoch lost or repeated
    assert len(history) == 6


def test_ray_says_when_a_worker_cannot_write_the_output_dir(tiny_overrides, tmp_path, ray_cluster):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    cfg = load_config(None, tiny_overrides + ["train.epochs=1"])
    with pytest.raises(FgvcError, match=r"cannot make the group folder .*a-file/group: Not a directory"):
        repeat(cfg, [1], blocker / "group", log=quiet, executor=ray_executor())  # the driver cannot either
    # a folder only the workers cannot write: the check the executor makes before any run starts
    executor = ray_executor()
    with pytest.raises(FgvcError, match=r"Ray worker on .* cannot write to .*a-file/group \(Not a directory\); output.dir must be writable by every worker"):
        executor._check_shared_storage(ray_cluster, blocker / "group")
    executor._check_shared_storage(ray_cluster, tmp_path / "fine")
    assert list((tmp_path / "fine").iterdir()) == []  # the probe file is cleaned up


def test_ray_refuses_more_cpus_per_trial_than_the_cluster_has(tiny_overrides, tmp_path, ray_cluster):
    cfg = load_config(None, tiny_overrides + ["train.epochs=1"])
    with pytest.raises(FgvcError, match=r"--cpus-per-trial 64: the Ray cluster has 2 CPUs in all"):
        repeat(cfg, [1], tmp_path / "g", log=quiet,
               executor=make_executor(executor_settings(None, "ray", cpus_per_trial=64)))


def test_ray_member_error_names_the_member_and_what_is_on_disk(tiny_overrides, tmp_path, ray_cluster):
    cfg = load_config(None, tiny_overrides + ["train.epochs=1", f"data.root={tmp_path / 'missing'}"])
    with pytest.raises(FgvcError, match=r"seed-1: ImageFolder: data folder not found: .*missing\. .*\. On disk: 0 finished; "):
        repeat(cfg, [1], tmp_path / "g", log=quiet, executor=ray_executor())


def test_executor_settings_precedence_and_errors(monkeypatch, tiny_overrides):
    cfg = load_config(None, tiny_overrides + ["executor.name=ray", "executor.cpus_per_trial=2"])
    assert executor_settings(cfg).name == "ray" and executor_settings(cfg).cpus_per_trial == 2
    assert executor_settings(cfg, "local").name == "local"  # the command line wins
    monkeypatch.setenv("FGVC_EXECUTOR", "local")
    monkeypatch.setenv("FGVC_RAY_ADDRESS", "ray://head:10001")
    assert executor_settings(cfg).name == "local" and executor_settings(cfg).address == "ray://head:10001"
    assert isinstance(make_executor(executor_settings(cfg)), LocalExecutor)
    monkeypatch.setenv("FGVC_EXECUTOR", "dask")
    with pytest.raises(ConfigError, match="FGVC_EXECUTOR: unknown executor 'dask'; choose local or ray"):
        executor_settings(cfg)
    with pytest.raises(ConfigError, match=r"--cpus-per-trial / executor.cpus_per_trial: Input should be greater than 0 \(got 0\)"):
        executor_settings(None, "ray", cpus_per_trial=0)


def test_missing_ray_is_one_clear_error(tiny_overrides, tmp_path):
    """A real `fgvc repeat --executor ray` in a process where `import ray` fails, as if Ray were not
    installed: one line saying how to install it, no traceback, nothing trained."""
    (tmp_path / "exp.yaml").write_text("seed: 0\n")
    without_ray = "import sys; sys.modules['ray'] = None; from fgvc.cli import main; main()"
    args = [sys.executable, "-c", without_ray, "repeat", str(tmp_path / "exp.yaml"), "--seeds", "1",
            "--out", str(tmp_path / "g"), "--executor", "ray"]
    for item in tiny_overrides + ["train.epochs=1"]:
        args += ["--set", item]
    result = subprocess.run(args, capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "1000"})
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: --executor ray needs Ray, which is not installed: pip install 'fgvc[ray]'")
    assert not list(tmp_path.glob("g/seed-*/metrics.json"))


def test_ctrl_c_stops_the_ray_runs_and_says_what_is_on_disk(tiny_overrides, tmp_path):
    """A real `fgvc repeat --executor ray` (its own Ray instance) interrupted as Ctrl-C does; started with
    SIGINT ignored, as a shell starts a background job (and as a test runner's worker may leave it): the
    driver still hears Ctrl-C while it waits on Ray."""
    pytest.importorskip("ray", reason="Ray is not installed: pip install 'fgvc[ray]'")
    (tmp_path / "exp.yaml").write_text("seed: 0\n")
    args = [str(Path(sys.executable).parent / "fgvc"), "repeat", str(tmp_path / "exp.yaml"), "--seeds", "2",
            "--out", str(tmp_path / "g"), "--executor", "ray"]
    # long enough that neither run can finish before both have a checkpoint (Ray may start one late)
    for item in tiny_overrides + ["train.epochs=300"]:
        args += ["--set", item]
    log = tmp_path / "repeat.log"  # a file, not a pipe: what the command said so far can be read at any time
    with log.open("w") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, text=True,
                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
        deadline = time.time() + 300  # a loaded machine (the suite's other worker busy) starts Ray slowly
        while len(list((tmp_path / "g").glob("seed-*/checkpoints/last.ckpt"))) < 2 and time.time() < deadline:
            time.sleep(0.1)
        if time.time() >= deadline:
            process.kill()
            process.wait()
            pytest.fail(f"the two Ray runs had no checkpoint within 300 s; the command printed:\n{log.read_text()}")
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=300)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            pytest.fail(f"fgvc repeat --executor ray did not stop within 300 s of Ctrl-C; it printed:\n{log.read_text()}")
    output = log.read_text()
    assert process.returncode == 130, output
    assert "2 runs sent to Ray (1 CPU, 0 GPU each)" in output
    assert "Ctrl-C: stopping the runs on Ray" in output
    assert "stopped by Ctrl-C. On disk: 0 finished; 2 with a checkpoint to resume (seed-0, seed-1)" in output
    assert "the same command again reuses finished runs and resumes the others" in output
    statuses = [RunFolder(path).status() for path in sorted((tmp_path / "g").glob("seed-*"))]
    assert [s["status"] for s in statuses] == ["stopped", "stopped"]
    assert all("SIGINT" in s["reason"] for s in statuses)


def test_a_local_ray_start_keeps_token_auth_without_its_warning():
    """Ray warns on every local start that it turned token authentication on; fgvc keeps it on and
    leaves that line out of normal output (a fresh process: the instance is the executor's own)."""
    pytest.importorskip("ray", reason="Ray is not installed: pip install 'fgvc[ray]'")
    import subprocess
    import sys

    code = ("from fgvc.config import ExecutorConfig\nfrom fgvc.experiments.ray_executor import ray_session\n"
            "import os\nwith ray_session(ExecutorConfig()) as ray:\n"
            "    print('cpus', ray.cluster_resources().get('CPU'), os.environ.get('RAY_AUTH_MODE'))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "cpus" in done.stdout and "token" in done.stdout  # authentication stays on
    assert "Token authentication is enabled" not in done.stderr + done.stdout

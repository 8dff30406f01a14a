"""Processes started together on one folder: two studies keep each other's study.json entries, a
group member another process is training is waited for and reused (never deleted), and the ranks a
cluster launcher starts (torchrun, srun) share the run folder rank 0 claims."""

import json
import multiprocessing
import os
import subprocess
import sys
import time

from fgvc.config import load_config
from fgvc.experiments.groups import run_member
from fgvc.experiments.study import record_question
from fgvc.runfolder import RunFolder

fork = multiprocessing.get_context("fork")  # the children run fgvc code already imported here


def _write_questions(out, names, known, start):
    start.wait()
    for name in names:
        record_question(out, {"study": "s", "seeds": [1], "split": "test"}, known, {"name": name, "value": 1},
                        lambda result: f"{len(result['questions'])} questions\n")


def test_two_studies_on_one_folder_keep_each_others_questions(tmp_path):
    names = [[f"p{p}_q{q:02d}" for q in range(15)] for p in range(2)]
    known = sorted(names[0] + names[1])
    start = fork.Barrier(2)
    workers = [fork.Process(target=_write_questions, args=(tmp_path, n, known, start)) for n in names]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [w.exitcode for w in workers] == [0, 0]
    study = json.loads((tmp_path / "study.json").read_text())
    assert list(study["questions"]) == known  # all 30, in the plan's order
    assert (tmp_path / "tables.md").read_text() == "30 questions\n"


def _train_slowly(cfg_yaml, run_dir, holding, done):
    """What a process training a member looks like from outside: the member reserved, files appearing
    in its folder, then config.yaml and metrics.json when it finishes."""
    folder = RunFolder(run_dir)
    with folder.reserved():
        run_dir.mkdir(parents=True)
        (run_dir / "history.csv").write_text("epoch\n0\n")
        holding.set()
        time.sleep(1.5)
        folder.config_file.write_text(cfg_yaml)
        folder.write_metrics({"test": {"top1": 0.75}})
    done.set()


def _reuse(cfg, run_dir, holding, results):
    holding.wait()
    lines = []
    metrics = run_member(cfg, run_dir, log=lines.append)
    results.put((metrics, lines))


def test_a_member_another_process_trains_is_waited_for_and_reused(tiny_overrides, tmp_path):
    cfg = load_config(None, tiny_overrides + ["train.epochs=1"])
    run_dir = tmp_path / "group" / "seed-0"
    holding, done, results = fork.Event(), fork.Event(), fork.Queue()
    trainer = fork.Process(target=_train_slowly, args=(cfg.to_yaml(), run_dir, holding, done))
    second = fork.Process(target=_reuse, args=(cfg, run_dir, holding, results))
    trainer.start()
    second.start()
    metrics, lines = results.get(timeout=120)
    trainer.join(30)
    second.join(30)
    assert done.is_set() and metrics == {"test": {"top1": 0.75}}
    assert lines[0].startswith("seed-0: another process (pid ") and lines[0].endswith("waiting to reuse it")
    assert lines[1:] == ["seed-0: finished earlier, reused"]
    assert (run_dir / "history.csv").read_text() == "epoch\n0\n"  # nothing deleted under the first process


CLAIM = "from fgvc.launcher import claim_or_join; folder, owner = claim_or_join({base!r}); print(folder.path, owner)"


def _ranks(base, variables, rank_key, delays=(0.6, 0.0)):
    """Start rank 0 and rank 1 of one launch (rank 1 first: it waits for rank 0's folder)."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "SLURM_PROCID", "SLURM_NTASKS")}
    procs = []
    for rank, delay in sorted(enumerate(delays), key=lambda item: -item[1]):
        code = f"import time; time.sleep({delay}); " + CLAIM.format(base=str(base))
        procs.append((rank, subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                                             env={**env, **variables, rank_key: str(rank)})))
    return {rank: proc.communicate(timeout=60)[0].split() for rank, proc in procs}


def test_ranks_of_a_cluster_launch_share_rank_0s_run_folder(tmp_path):
    base = tmp_path / "runs" / "exp"
    RunFolder.claim(base)  # an earlier run: this launch's folder is exp-2
    torchrun = {"WORLD_SIZE": "2", "TORCHELASTIC_RUN_ID": "abc", "MASTER_ADDR": "node1", "MASTER_PORT": "29500"}
    assert _ranks(base, torchrun, "RANK") == {0: [f"{base}-2", "True"], 1: [f"{base}-2", "False"]}
    srun = {"SLURM_NTASKS": "2", "SLURM_JOB_ID": "77", "SLURM_STEP_ID": "0"}
    assert _ranks(base, srun, "SLURM_PROCID") == {0: [f"{base}-3", "True"], 1: [f"{base}-3", "False"]}
    assert sorted(p.name for p in base.parent.iterdir()) == ["exp", "exp-2", "exp-3"]  # no folder per rank
    alone = subprocess.run([sys.executable, "-c", CLAIM.format(base=str(base))], capture_output=True, text=True,
                           env={**os.environ, **srun, "SLURM_JOB_ID": "78", "SLURM_PROCID": "1",
                                "FGVC_LAUNCH_WAIT": "0.5"})
    assert "RunFolderError: rank 1 of 2 (slurm:78.0): rank 0 claimed no run folder under" in alone.stderr

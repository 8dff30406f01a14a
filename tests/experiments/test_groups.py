"""repeat, crossval, compare and sweep on the tiny colour fixture: real training, small."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from fgvc.cli import app
from fgvc.config import load_config
from fgvc.data import load_data
from fgvc.errors import FgvcError
from fgvc.experiments.compare import compare_groups
from fgvc.experiments.crossval import crossval
from fgvc.experiments.groups import check_member_config, write_group
from fgvc.experiments.repeat import parse_seeds, repeat
from fgvc.experiments.sweep import parse_grid, sweep
from fgvc.train.run import train

runner = CliRunner()


def quiet(_):
    pass


def test_repeat_summarises_and_reuses_finished_seeds(tiny_overrides, tmp_path):
    cfg = load_config(None, tiny_overrides + ["train.epochs=1"])
    group = tmp_path / "g"
    summary = repeat(cfg, [1, 2, 3], group, log=quiet)
    assert summary["members"] == ["seed-1", "seed-2", "seed-3"]
    top1 = [json.loads((group / f"seed-{s}" / "metrics.json").read_text())["test"]["top1"] for s in (1, 2, 3)]
    stats = summary["metrics"]["test"]["top1"]
    assert stats["n"] == 3 and stats["mean"] == pytest.approx(np.mean(top1))
    assert stats["std"] == pytest.approx(np.std(top1, ddof=1))
    assert json.loads((group / "summary.json").read_text())["metrics"]["test"]["top1"]["mean"] == stats["mean"]
    stamp = (group / "seed-2" / "metrics.json").stat().st_mtime_ns
    messages = []
    again = repeat(cfg, [1, 2, 3, 4], group, log=messages.append)
    assert (group / "seed-2" / "metrics.json").stat().st_mtime_ns == stamp  # not re-run
    assert messages.count("seed-1: finished earlier, reused") == 1 and "seed-4: training" in messages
    assert again["metrics"]["test"]["top1"]["n"] == 4


def test_repeat_resumes_a_killed_member(tiny_overrides, tmp_path):
    cfg = load_config(None, tiny_overrides + ["train.epochs=2"])
    group = tmp_path / "g"
    repeat(cfg, [5], group, log=quiet)
    (group / "seed-5" / "metrics.json").unlink()  # as if killed after its checkpoints were written
    messages = []
    repeat(cfg, [5], group, log=messages.append)
    assert messages == ["seed-5: resuming from its last checkpoint"]
    assert (group / "seed-5" / "metrics.json").is_file()


def test_a_member_is_not_reused_or_resumed_with_another_config(tiny_overrides, tmp_path):
    cfg = load_config(None, tiny_overrides + ["train.epochs=1"])
    group = tmp_path / "g"
    repeat(cfg, [5], group, log=quiet)
    stamp = (group / "seed-5" / "metrics.json").stat().st_mtime_ns
    other = load_config(None, tiny_overrides + ["train.epochs=1", "optim.lr=0.5"])
    recorded = (group / "group.json").read_text()
    with pytest.raises(FgvcError, match=r"seed-5 was trained with another config \(optim.lr: 0.01 there, 0.5 now\)"):
        repeat(other, [5], group, log=quiet)
    assert (group / "group.json").read_text() == recorded  # the refused recipe left nothing behind
    (group / "seed-5" / "metrics.json").unlink()  # killed after its checkpoints: resuming is refused too
    with pytest.raises(FgvcError, match="trained with another config"):
        repeat(other, [5], group, log=quiet)
    assert (group / "seed-5" / "checkpoints" / "last.ckpt").is_file()  # nothing was deleted
    # where the run writes and how it is fed are not part of what it learnt
    same = load_config(None, tiny_overrides + ["train.epochs=1", "data.num_workers=1", "train.loggers=[csv]"])
    repeat(same, [5], group, log=quiet)
    assert (group / "seed-5" / "metrics.json").stat().st_mtime_ns != stamp  # resumed and finished
    (tmp_path / "exp.yaml").write_text("seed: 0\n")
    result = runner.invoke(app, ["repeat", str(tmp_path / "exp.yaml"), "--seeds", "5,", "--out", str(group), *[
        a for o in tiny_overrides + ["train.epochs=1", "train.batch_size=3"] for a in ("--set", o)]])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "train.batch_size" in result.output and "another --out" in result.output


def test_a_member_drawn_with_another_limit_seed_is_refused(tiny_overrides, tmp_path):
    # an older fgvc drew k-shot images with data.split_seed and its config.yaml has no data.limit_seed:
    # only the seed metrics.json records tells such a folder from a new one
    cfg = load_config(None, tiny_overrides + ["train.epochs=1", "data.limit_per_class=2", "seed=5"])
    run_dir = tmp_path / "g" / "seed-5"
    train(cfg, run_dir=run_dir, progress=False)
    metrics_file = run_dir / "metrics.json"
    metrics = json.loads(metrics_file.read_text())
    assert metrics["limit_per_class"]["seed"] == 5
    check_member_config(cfg, run_dir)  # the seed it drew with: reused
    metrics["limit_per_class"]["seed"] = 0  # as an older fgvc wrote it (split_seed 0)
    metrics_file.write_text(json.dumps(metrics))
    with pytest.raises(FgvcError, match=r"seed-5 drew its data.limit_per_class images with seed 0 .*with seed 5; "
                                        r"set data.limit_seed=0 to reuse its draw, or choose another --out") as err:
        check_member_config(cfg, run_dir)
    assert "\n" not in str(err.value)
    # data.limit_seed set to the recorded seed reuses it, though config.yaml has limit_seed null
    check_member_config(load_config(None, tiny_overrides + ["train.epochs=1", "data.limit_per_class=2", "seed=5",
                                                            "data.limit_seed=0"]), run_dir)
    with pytest.raises(FgvcError, match=r"another config \(data.limit_seed: None there, 7 now\)"):  # not its draw
        check_member_config(load_config(None, tiny_overrides + ["train.epochs=1", "data.limit_per_class=2",
                                                                "seed=5", "data.limit_seed=7"]), run_dir)


def test_parse_seeds():
    assert parse_seeds("3", 10) == [10, 11, 12]
    assert parse_seeds("1,7, 42", 0) == [1, 7, 42]
    assert parse_seeds("0,", 5) == [0]  # one seed: a list of one
    with pytest.raises(FgvcError, match=r"for the seed 0 alone write --seeds 0,"):
        parse_seeds("0", 5)  # a count of none, most likely meant as seed 0


def test_kfold_data_splits_are_disjoint_stratified_and_cover(tiny_overrides):
    cfg = load_config(None, tiny_overrides + ["data.folds=4"])
    seen = []
    for fold in range(4):
        splits = load_data(cfg.data.model_copy(update={"fold": fold}))
        assert not set(splits.train.paths) & set(splits.val.paths)
        assert splits.val.class_counts().tolist() == [4, 4, 4]
        assert len(splits.test) == 12  # the official test split is untouched
        seen += splits.val.paths
    assert len(seen) == len(set(seen)) == 48


def test_fold_out_of_range_is_a_config_error():
    with pytest.raises(FgvcError, match="fold 4 needs data.folds > 4"):
        load_config(None, ["data.folds=4", "data.fold=4"])


def test_crossval_with_retrain(tiny_overrides, tmp_path):
    cfg = load_config(None, tiny_overrides + ["train.epochs=1"])
    summary = crossval(cfg, 3, tmp_path / "cv", retrain=True, log=quiet)
    assert summary["members"] == ["fold-0", "fold-1", "fold-2"]
    assert summary["metrics"]["val"]["top1"]["n"] == 3
    assert summary["final"]["test"]["n"] == 12 and "val" not in summary["final"]
    val_sizes = [json.loads((tmp_path / "cv" / f"fold-{k}" / "metrics.json").read_text())["val"]["n"] for k in range(3)]
    assert sum(val_sizes) == 48


def _fake_group(path, values, seeds, cfg=None, classes=None):
    write_group(path, "repeat", cfg or load_config(), {f"seed-{s}": {"seed": s} for s in seeds})
    for s, v in zip(seeds, values):
        (path / f"seed-{s}").mkdir(parents=True)
        (path / f"seed-{s}" / "metrics.json").write_text(json.dumps({"seed": s, "test": {"top1": v, "n": 100}}))
        if classes:
            (path / f"seed-{s}" / "classes.json").write_text(json.dumps(classes))
    return path


def test_compare_verdicts_on_constructed_groups(tmp_path):
    a = _fake_group(tmp_path / "baseline", [0.70, 0.72, 0.71, 0.69, 0.73], [1, 2, 3, 4, 5])
    b = _fake_group(tmp_path / "better", [0.72, 0.735, 0.725, 0.71, 0.742], [1, 2, 3, 4, 5])
    same = _fake_group(tmp_path / "noise", [0.705, 0.715, 0.712, 0.70, 0.725], [1, 2, 3, 4, 5])
    rows = compare_groups([a, b, same], metrics=["top1"])
    assert rows[0][3].startswith("better better than baseline on top1 by 1.64 points")
    assert "5 paired seeds" in rows[0][3] and rows[0][2].paired
    assert rows[1][3].startswith("no significant difference between baseline and noise")
    result = runner.invoke(app, ["compare", str(a), str(b), "--metric", "top1", "--out", str(tmp_path / "c.md")])
    assert result.exit_code == 0 and "better better than baseline" in result.output
    written = (tmp_path / "c.md").read_text()
    assert "| baseline | better | top1 (points) | 71.00 | 72.64 | +1.64 |" in written  # same unit as the verdict
    assert f"- {rows[0][3]}" in written and "+1.64" in result.output
    with pytest.raises(FgvcError, match="not a run group"):
        compare_groups([a, tmp_path])


def test_compare_refuses_other_tasks_unknown_metrics_and_missing_groups(tmp_path):
    grades = ["functional", "possibly_defective", "likely_defective", "defective"]
    elpv = _fake_group(tmp_path / "elpv", [0.7, 0.72, 0.71], [1, 2, 3], load_config(None, ["data.name=elpv"]), grades)
    kaggle = _fake_group(tmp_path / "kaggle", [0.9, 0.92, 0.91], [1, 2, 3],
                         load_config(None, ["data.name=kaggle_csv"]), ["cat", "dog"])
    with pytest.raises(FgvcError, match=r"cannot compare elpv and kaggle: they learn different tasks \(data set "
                                        r"'elpv' vs 'kaggle_csv'\)"):
        compare_groups([elpv, kaggle])
    three = _fake_group(tmp_path / "three", [0.7, 0.72, 0.71], [1, 2, 3], classes=["a", "b", "c"])
    two = _fake_group(tmp_path / "two", [0.8, 0.82, 0.81], [1, 2, 3], classes=["a", "b"])
    with pytest.raises(FgvcError, match=r"they learn different tasks \(classes 3 classes \[a, b, c\] vs 2 classes"):
        compare_groups([three, two])
    from fgvc.experiments.groups import summarize_group
    from fgvc.report.paper import export_latex

    for group in (three, two):
        summarize_group(group)
    with pytest.raises(FgvcError, match=r"they learn different tasks \(classes 3 classes"):  # the library, not the CLI
        export_latex([three, two], tmp_path / "latex")
    (two / "group.json").write_text('{"kind": "repeat", "members": {')  # cut short by a full disk
    with pytest.raises(FgvcError, match=rf"^{two / 'group.json'} cannot be read \(.*\); run the command that made"):
        compare_groups([three, two])
    again = _fake_group(tmp_path / "again", [0.71, 0.73, 0.70], [1, 2, 3], classes=["a", "b", "c"])
    assert compare_groups([three, again], metrics=["top1"])
    with pytest.raises(FgvcError, match="--metric nonsense: the groups report no such test metric; choose from: n, top1"):
        compare_groups([three, again], metrics=["nonsense"])
    result = runner.invoke(app, ["compare", str(three), str(tmp_path / "nope")])
    assert result.exit_code == 2 and "run group not found" in result.output


def test_sweep_grid_and_cli_repeat(tiny_overrides, tmp_path):
    assert parse_grid(["loss.name=ce,focal", "optim.lr=0.1,0.01"]) == {"loss.name": ["ce", "focal"], "optim.lr": [0.1, 0.01]}
    cfg = load_config(None, tiny_overrides + ["train.epochs=1"])
    result = sweep(cfg, {"loss.name": ["ce", "focal"]}, [1, 2], tmp_path / "sw", log=quiet)
    assert [c.split("/")[-1] for c in result["cells"]] == ["loss.name=ce", "loss.name=focal"]
    focal_cfg = load_config(tmp_path / "sw" / "loss.name=focal" / "seed-1" / "config.yaml")
    assert focal_cfg.loss.name == "focal" and focal_cfg.seed == 1
    assert result["comparisons"] and all("verdict" in row for row in result["comparisons"])
    (tmp_path / "exp.yaml").write_text("seed: 42\n")
    args = [a for s in tiny_overrides + ["train.epochs=1"] for a in ("--set", s)]
    cli = runner.invoke(app, ["repeat", str(tmp_path / "exp.yaml"), *args, "--seeds", "1,2", "--out", str(tmp_path / "r")])
    assert cli.exit_code == 0, cli.output
    assert "mean" in cli.output and "95% CI" in cli.output
    assert "warning: only 2 runs" in cli.output  # two seeds: said in the CLI, the summary and the report
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["warning"].startswith("only 2 runs")
    assert "warning:</b> only 2 runs" in (tmp_path / "r" / "report.html").read_text()
    for split in ("val", "test"):
        for metric, d in summary["metrics"][split].items():
            if d["ci_low"] is not None and metric != "n":
                assert 0 <= d["ci_low"] <= d["mean"] <= d["ci_high"] <= 1, (split, metric, d)
    seconds = summary["metrics"]["time"]["train_seconds"]
    assert seconds["ci_low"] > 0 and seconds["method"] == "t on log scale"


def test_repeat_can_vary_the_split_with_the_seed(tiny_overrides, tmp_path):
    """--vary seed,data.split_seed: each member also draws its own train/val split (split-to-split variance)."""
    from typer.testing import CliRunner

    from fgvc.cli import app
    from fgvc.runfolder import RunFolder

    args = [a for s in tiny_overrides + ["train.epochs=1"] for a in ("--set", s)]
    (tmp_path / "c.yaml").write_text("seed: 0\n")
    result = CliRunner().invoke(app, ["repeat", str(tmp_path / "c.yaml"), *args, "--seeds", "3,4", "--vary", "seed,data.split_seed",
                                      "--out", str(tmp_path / "g")])
    assert result.exit_code == 0, result.output
    configs = {s: load_config(tmp_path / "g" / f"seed-{s}" / "config.yaml") for s in (3, 4)}
    assert [(c.seed, c.data.split_seed) for c in configs.values()] == [(3, 3), (4, 4)]
    val = {s: {r.image for r in RunFolder(tmp_path / "g" / f"seed-{s}").predictions("val")} for s in (3, 4)}
    assert val[3] != val[4]  # other val images
    assert json.loads((tmp_path / "g" / "group.json").read_text())["members"]["seed-3"]["vary"] == ["seed", "data.split_seed"]


def test_cli_crossval_prints_the_test_aggregate_and_warns_in_folds(tiny_overrides, tmp_path):
    config = tmp_path / "cv.yaml"
    config.write_text(load_config(None, tiny_overrides + ["train.epochs=1"]).to_yaml())
    result = runner.invoke(app, ["crossval", str(config), "--folds", "2"])
    assert result.exit_code == 0, result.output
    assert "val split (mean and 95% CI)" in result.output and "test split (mean and 95% CI)" in result.output
    assert "only 2 runs: a confidence interval over so few folds" in result.output

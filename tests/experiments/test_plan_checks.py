"""Every check before the work: a sweep, study or search that could not make its comparison at the end
refuses before it trains anything, in one line."""

import pytest
import yaml

from fgvc.config import load_config
from fgvc.errors import ConfigError, FgvcError
from fgvc.experiments.repeat import parse_seeds
from fgvc.experiments.study import study
from fgvc.experiments.sweep import sweep
from fgvc.train.run import train


def no_test_split(overrides):
    return [o for o in overrides if not o.startswith("data.test_root")]


def trained_nothing(folder) -> bool:
    return not folder.exists() or not list(folder.rglob("config.yaml"))


def test_a_monitor_no_run_reports_is_refused_before_training(tiny_overrides, tmp_path):
    with pytest.raises(ConfigError, match=r"train.monitor 'val/nonsense' is not a metric a run reports .*"
                                          r"choose one of: val/loss, val/top1, val/f1_macro"):
        load_config(None, tiny_overrides + ["train.monitor=val/nonsense"])
    cfg = load_config(None, tiny_overrides + ["train.monitor=val/top5"])  # 3 classes: top-5 is never reported
    with pytest.raises(ConfigError, match="3 classes make top-5 accuracy 1 by construction"):
        train(cfg, progress=False)
    assert trained_nothing(tmp_path / "runs")


def test_sweep_refuses_one_seed_and_a_missing_test_split_up_front(tiny_overrides, tmp_path):
    cfg = load_config(None, tiny_overrides)
    grid = {"optim.lr": [0.01, 0.02]}
    with pytest.raises(FgvcError, match="fgvc sweep compares groups of runs paired by seed: --seeds gives 1"):
        sweep(cfg, grid, [0], tmp_path / "sweep")
    unlabelled = load_config(None, no_test_split(tiny_overrides))
    with pytest.raises(FgvcError, match=r"fgvc sweep compares on the test split, and image_folder here has no test "
                                        r"split; compare on val \(--split val\)"):
        sweep(unlabelled, grid, [0, 1], tmp_path / "sweep")
    with pytest.raises(FgvcError, match="fgvc sweep --split train: compare on val or test"):
        sweep(cfg, grid, [0, 1], tmp_path / "sweep", split="train")
    assert trained_nothing(tmp_path / "sweep")


def test_study_refuses_a_split_it_cannot_compare_on(tiny_overrides, tmp_path):
    folder = tmp_path / "study"
    folder.mkdir()
    for name, lr in (("a", 0.01), ("b", 0.02)):
        cfg = load_config(None, no_test_split(tiny_overrides) + [f"optim.lr={lr}"])
        (folder / f"{name}.yaml").write_text(cfg.to_yaml())
    said = []
    with pytest.raises(FgvcError, match="fgvc study --split train: compare on val or test"):
        study(folder, [1, 2], tmp_path / "out", split="train", log=said.append)
    assert said == ["warning: only 2 runs: a confidence interval over so few seeds is very wide or undefined; "
                    "use 3 or more seeds for a number to report"]  # said first, as repeat and crossval say it
    with pytest.raises(FgvcError, match="fgvc study compares on the test split, and image_folder here has no test"):
        study(folder, [1, 2], tmp_path / "out")
    assert trained_nothing(tmp_path / "out")


def test_search_checks_its_metric_seeds_and_split_before_ray(tiny_overrides, tmp_path):
    from fgvc.experiments.search import search

    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"optim.lr": {"loguniform": [1.0e-3, 1.0e-1]}}))
    cfg = load_config(None, tiny_overrides)
    with pytest.raises(FgvcError, match="--metric val/nonsense: not a metric the trials report; choose one of: "
                                        "val/loss, val/top1, val/f1_macro"):
        search(cfg, space, 2, tmp_path / "s", metric="val/nonsense", seeds=[0, 1, 2])
    with pytest.raises(FgvcError, match="confirmation compares on the test split, and image_folder here has no test"):
        search(load_config(None, no_test_split(tiny_overrides)), space, 2, tmp_path / "s", seeds=[0, 1, 2])
    assert trained_nothing(tmp_path / "s")


def test_seeds_that_are_not_numbers_are_one_line():
    assert parse_seeds("3", 5) == [5, 6, 7] and parse_seeds("1,7,42", 0) == [1, 7, 42]
    for text in ("x", "1,x", "0", ""):
        with pytest.raises(FgvcError, match="--seeds"):
            parse_seeds(text, 0)

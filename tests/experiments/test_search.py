"""fgvc search: the space checked against the schema, a real Ray Tune search (Optuna TPE, ASHA) on the
tiny colour fixture that never evaluates test, best.yaml, and the confirmation's paired verdict."""

import html
import json

import pytest
from typer.testing import CliRunner
import yaml

from fgvc.cli import app
from fgvc.config import load_config
from fgvc.errors import ConfigError, FgvcError
from fgvc.experiments.search_space import load_space

pytest.importorskip("ray")
pytest.importorskip("optuna")


def write_space(tmp_path, text):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, message", [
    ("optim.learning_rate: {loguniform: [1.0e-4, 1.0e-2]}\n",
     r"space.yaml: optim.learning_rate: loguniform \[0.0001, 0.01\] does not fit the config: unknown key "
     r"'optim.learning_rate'; valid keys here: betas, l1, lr"),
    ("optim.lr: {logspace: [1, 2]}\n", r"space.yaml: optim.lr: unknown distribution 'logspace'; choose one of "
                                       r"uniform, loguniform, int, choice"),
    ("optim.lr: {loguniform: [0, 0.1]}\n", r"optim.lr: loguniform needs low > 0; got 0"),
    ("optim.lr: {uniform: [0.1, 0.01]}\n", r"optim.lr: uniform needs low < high; got \[0.1, 0.01\]"),
    ("loss.name: {choice: [ce, hinge]}\n", r"loss.name: choice \['ce', 'hinge'\] does not fit the config: loss.name"),
    ("strategy.unfreeze_last: {int: [1.5, 3]}\n", r"int takes \[low, high\] integers"),
    ("seed: {int: [0, 100]}\n", r"seed cannot be searched"),
    ("data.test_split_seed: {int: [0, 3]}\n", r"data.test_split_seed cannot be searched"),
])
def test_space_is_checked_against_the_schema_before_any_trial(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_space(write_space(tmp_path, text), load_config())


def test_space_reads_every_distribution(tmp_path):
    dims = load_space(write_space(tmp_path, "optim.lr: {loguniform: [1.0e-4, 1.0e-2]}\n"
                                            "optim.weight_decay: {uniform: [0.0, 0.1]}\n"
                                            "strategy.unfreeze_last: {int: [1, 3]}\n"
                                            "loss.name: {choice: [ce, focal]}\n"), load_config())
    assert [(d.key, d.kind, d.values) for d in dims] == [
        ("optim.lr", "loguniform", (1e-4, 1e-2)), ("optim.weight_decay", "uniform", (0.0, 0.1)),
        ("strategy.unfreeze_last", "int", (1, 3)), ("loss.name", "choice", ("ce", "focal"))]
    assert dims[2].to_tune().sample() in (1, 2, 3)


def test_search_prunes_never_sees_test_and_confirms_its_winner(tiny_overrides, tmp_path):
    import ray

    from fgvc.experiments.executors import executor_settings
    from fgvc.experiments.search import search

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="error")
    try:
        cfg = load_config(None, tiny_overrides + ["train.epochs=3"])
        space = write_space(tmp_path, "optim.lr: {loguniform: [1.0e-3, 1.0e-1]}\n"
                                      "optim.name: {choice: [sgd, adamw]}\n")
        record = search(cfg, space, trials=6, search_dir=tmp_path / "s", seeds=[1, 2, 3],
                        settings=executor_settings(None, "ray", cpus_per_trial=1), log=lambda _: None)
    finally:
        ray.shutdown()
    trials = record["trials"]
    assert len(trials) == 6 and {t["status"] for t in trials} <= {"completed", "pruned"}
    assert any(t["status"] == "pruned" for t in trials)  # ASHA stopped some early
    for trial in trials:
        metrics_file = tmp_path / "s" / "trials" / f"trial-{trial['trial']}" / "metrics.json"
        if trial["status"] == "completed":
            metrics = json.loads(metrics_file.read_text())
            assert "val" in metrics and "test" not in metrics  # the search never evaluates test
            assert trial["value"] == metrics["val"]["top1"]
            assert trial["curve"][-1]["epoch"] == 3
        else:
            assert not metrics_file.exists() and trial["epochs"] < 3
            assert "pruned by ASHA" in json.loads(
                (tmp_path / "s" / "trials" / f"trial-{trial['trial']}" / "run.json").read_text())["reason"]
    best = max((t for t in trials if t["status"] == "completed"), key=lambda t: t["value"])
    assert record["best"]["params"] == best["params"]
    written = yaml.safe_load((tmp_path / "s" / "best.yaml").read_text())
    assert written["optim"]["name"] == best["params"]["optim.name"]
    assert written["optim"]["lr"] == pytest.approx(best["params"]["optim.lr"])
    for arm in ("start", "best"):  # confirmation: both over the same seeds, evaluated on test
        summary = json.loads((tmp_path / "s" / "confirm" / arm / "summary.json").read_text())
        assert summary["members"] == ["seed-1", "seed-2", "seed-3"] and "test" in summary["metrics"]
    verdict = record["confirmation"]["verdict"]
    assert verdict.startswith("search's best ") and "points of test top1, 95 % CI [" in verdict
    report = (tmp_path / "s" / "report.html").read_text()
    assert html.escape(verdict) in report and "pruned" in report and "Parameter importances" in report
    assert set(record["importances"]) == {"optim.lr", "optim.name"}
    # `fgvc report` rebuilds a search folder's report as it does a run's or a group's
    (tmp_path / "s" / "report.html").unlink()
    result = CliRunner().invoke(app, ["report", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    assert html.escape(verdict) in (tmp_path / "s" / "report.html").read_text()


def test_search_refuses_a_probe_and_too_few_seeds(tiny_overrides, tmp_path):
    from fgvc.experiments.search import search

    space = write_space(tmp_path, "optim.lr: {loguniform: [1.0e-3, 1.0e-1]}\n")
    with pytest.raises(FgvcError, match="train.engine: probe has no epochs to prune"):
        search(load_config(None, tiny_overrides + ["train.engine=probe"]), space, 2, tmp_path / "s")
    with pytest.raises(FgvcError, match=r"at least 3 seeds \(got 2\)"):
        search(load_config(None, tiny_overrides), space, 2, tmp_path / "s", seeds=[1, 2])
    with pytest.raises(FgvcError, match="--metric test/top1: a search chooses on the validation split only"):
        search(load_config(None, tiny_overrides), space, 2, tmp_path / "s", metric="test/top1")

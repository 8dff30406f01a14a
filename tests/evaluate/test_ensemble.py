import json

import pytest
from typer.testing import CliRunner

from fgvc.cli import app
from fgvc.config import load_config
from fgvc.evaluate.ensemble import ensemble_runs
from fgvc.evaluate.runs import evaluate_split, load_trained
from fgvc.train.run import train

runner = CliRunner()


@pytest.fixture
def two_runs(tiny_overrides):
    cfg = load_config(None, tiny_overrides + ["train.epochs=1"])
    a = train(cfg, progress=False)
    b = train(load_config(None, tiny_overrides + ["train.epochs=1", "seed=3", "output.name=other"]), progress=False)
    return a, b


def test_ensemble_of_two_identical_runs_equals_one(two_runs):
    a, _ = two_runs
    single = ensemble_runs([a.run_dir])
    double = ensemble_runs([a.run_dir, a.run_dir])
    for key in ("top1", "f1_macro", "ece", "auroc_macro"):
        assert double["ensemble"][key] == pytest.approx(single["ensemble"][key], abs=1e-6)
        assert double["ensemble"][key] == pytest.approx(a.test[key], abs=1e-5)
    assert double["ensemble"]["confusion_matrix"] == a.test["confusion_matrix"]


def test_ensemble_reports_members_and_writes_files(two_runs, tmp_path):
    a, b = two_runs
    result = ensemble_runs([a.run_dir, b.run_dir], combine="logits", out=tmp_path / "ens")
    assert len(result["members"]) == 2
    assert result["members_mean"]["top1"] == pytest.approx((a.test["top1"] + b.test["top1"]) / 2, abs=1e-6)
    assert json.loads((tmp_path / "ens" / "ensemble.json").read_text())["combine"] == "logits"
    assert (tmp_path / "ens" / "predictions_test.csv").is_file()
    cli = runner.invoke(app, ["ensemble", str(a.run_dir), str(b.run_dir), "--tta", "flip,crops"])
    assert cli.exit_code == 0, cli.output
    assert "ensemble" in cli.output and "members' mean" in cli.output


def test_tta_views_change_predictions_but_not_shapes(two_runs):
    a, _ = two_runs
    run = load_trained(a.run_dir)
    plain = evaluate_split(run, "test", write=False)
    run.cfg.eval.tta = ["flip", "crops"]
    tta = evaluate_split(run, "test", write=False)
    assert tta["n"] == plain["n"] == 12
    assert len(tta["confusion_matrix"]) == 3

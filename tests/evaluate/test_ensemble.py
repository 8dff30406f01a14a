import json

import numpy as np
import torch

import pytest
from typer.testing import CliRunner

from fgvc.cli import app
from fgvc.config import load_config
from fgvc.errors import FgvcError
from fgvc.evaluate.diversity import diversity
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


def test_diversity_of_members():
    targets = torch.tensor([0, 1, 2, 0, 1, 2])
    same = diversity([torch.tensor([0, 1, 2, 0, 1, 1])] * 2, targets)
    assert same["disagreement"] == 0.0 and same["error_correlation"] == pytest.approx(1.0)
    a, b = torch.tensor([0, 1, 2, 0, 0, 0]), torch.tensor([1, 1, 2, 0, 1, 2])  # a errs on 4 and 5, b on 0
    d = diversity([a, b], targets)
    assert d["pairs"] == 1 and d["disagreement"] == pytest.approx(3 / 6)
    ea, eb = np.array([0, 0, 0, 0, 1, 1.0]), np.array([1, 0, 0, 0, 0, 0.0])
    assert d["error_correlation"] == pytest.approx(np.corrcoef(ea, eb)[0, 1])
    assert diversity([a], targets)["disagreement"] is None


def test_ensemble_reports_diversity_and_d4_tta(two_runs):
    a, b = two_runs
    result = ensemble_runs([a.run_dir, b.run_dir], tta=["d4"])
    assert 0 <= result["diversity"]["disagreement"] <= 1 and result["diversity"]["pairs"] == 1
    cli = runner.invoke(app, ["ensemble", str(a.run_dir), str(b.run_dir), "--tta", "d4"])
    assert cli.exit_code == 0, cli.output
    assert "diversity over 1 member pairs: disagreement" in cli.output


def test_d4_views_are_the_eight_symmetries():
    from fgvc.evaluate.predict import tta_views

    batch = torch.arange(9.0).view(1, 1, 3, 3)
    views = tta_views(batch, ["d4"])
    assert len(views) == 8 and len({tuple(v.flatten().tolist()) for v in views}) == 8
    assert torch.equal(views[0], batch) and torch.equal(views[4], batch.flip(-1))
    assert len(tta_views(batch, ["flip"])) == 2 and len(tta_views(batch, [])) == 1


def test_ensemble_reads_saved_predictions_and_builds_no_model(two_runs, monkeypatch, tmp_path):
    import shutil

    import fgvc.evaluate.ensemble as ensemble

    a, b = two_runs
    real = ensemble.saved_logits
    monkeypatch.setattr(ensemble, "saved_logits", lambda *args: None)  # every member predicted again
    predicted = {combine: ensemble_runs([a.run_dir, b.run_dir], combine=combine) for combine in ("probs", "logits")}
    monkeypatch.setattr(ensemble, "saved_logits", real)
    for run in (a, b):  # no checkpoint, no weights: no model can be built
        shutil.move(run.run_dir / "checkpoints", tmp_path / f"{run.run_dir.name}-checkpoints")
    saved = {"probs": ensemble_runs([a.run_dir, b.run_dir], combine="probs")}
    assert [m["predictions"] for m in saved["probs"]["members"]] == ["saved", "saved"]
    with pytest.raises(FgvcError, match="no checkpoint"):  # other views than the saved ones: predicted again
        ensemble_runs([a.run_dir, b.run_dir], tta=["flip"])
    for run in (a, b):
        shutil.move(tmp_path / f"{run.run_dir.name}-checkpoints", run.run_dir / "checkpoints")
    # log-probabilities averaged: saved, unless a probability underflowed to 0 (then predicted again)
    saved["logits"] = ensemble_runs([a.run_dir, b.run_dir], combine="logits")
    for combine in ("probs", "logits"):
        for key in ("top1", "f1_macro", "recall_macro"):
            assert saved[combine]["ensemble"][key] == predicted[combine]["ensemble"][key]
        assert saved[combine]["ensemble"]["ece"] == pytest.approx(predicted[combine]["ensemble"]["ece"], abs=1e-5)
        assert saved[combine]["ensemble"]["confusion_matrix"] == predicted[combine]["ensemble"]["confusion_matrix"]
        assert saved[combine]["members_mean"]["top1"] == predicted[combine]["members_mean"]["top1"]


def test_probe_runs_record_what_made_their_predictions_so_an_ensemble_reads_them(tiny_overrides, tmp_path):
    """Engines that predict the splits themselves (probe, zero-shot, Tip-Adapter, WiSE-FT) say so in
    metrics_<split>.json like `fgvc eval` does: an ensemble of probes reads their CSVs, builds no model,
    and gets what predicting again gives."""
    import shutil

    from fgvc.runfolder import RunFolder

    probe = tiny_overrides + ["train.engine=probe", "probe.head=logreg"]
    a = train(load_config(None, probe), progress=False)
    b = train(load_config(None, probe + ["probe.c=0.1", "output.name=other"]), progress=False)
    assert RunFolder(a.run_dir).predicted_with("test") == {"checkpoint": "best", "tta": []}
    predicted = {}
    for run in (a, b):  # what a member predicted again gives
        predicted[run.run_dir] = evaluate_split(load_trained(run.run_dir), "test", write=False)
    for run in (a, b):  # no checkpoints: no model can be built, the saved predictions must do
        shutil.move(run.run_dir / "checkpoints", tmp_path / f"{run.run_dir.name}-checkpoints")
    saved = ensemble_runs([a.run_dir, b.run_dir])
    assert [m["predictions"] for m in saved["members"]] == ["saved", "saved"]
    for member, run in zip(saved["members"], (a, b)):
        assert member["top1"] == predicted[run.run_dir]["top1"]
        assert member["auroc_macro"] == pytest.approx(predicted[run.run_dir]["auroc_macro"], abs=1e-4)


def test_members_evaluated_on_other_test_images_are_refused(tiny_overrides, colour_data, tmp_path):
    """Members whose data configs differ are compared image by image (keys, so shards and in-memory
    pixels count too): another test set is one line naming both runs."""
    import shutil

    other_test = tmp_path / "other_test"
    shutil.copytree(colour_data / "test", other_test)
    next(p for p in sorted(other_test.rglob("*.png"))).unlink()  # one test image fewer
    a = train(load_config(None, tiny_overrides + ["train.epochs=1"]), progress=False)
    b = train(load_config(None, tiny_overrides + ["train.epochs=1", f"data.test_root={other_test}",
                                                  "output.name=other"]), progress=False)
    with pytest.raises(FgvcError, match=rf"^{b.run_dir} was evaluated on other test images than {a.run_dir}$"):
        ensemble_runs([a.run_dir, b.run_dir])
    same = train(load_config(None, tiny_overrides + ["train.epochs=1", "data.split_seed=5", "output.name=same"]),
                 progress=False)
    assert len(ensemble_runs([a.run_dir, same.run_dir])["members"]) == 2  # another train/val draw, the same test

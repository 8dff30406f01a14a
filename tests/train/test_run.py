"""End to end on fixture data with tiny models: the real training path, no mocks."""

import csv
import json

from pathlib import Path

import pytest
from typer.testing import CliRunner

from fgvc.cli import app
from fgvc.config import load_config
from fgvc.errors import FgvcError
from fgvc.evaluate.predict import predict_probs
from fgvc.evaluate.runs import images_in_folder, load_trained
from fgvc.train.run import resume, train

runner = CliRunner()
VIT = ["model.name=vit_tiny_patch16_224", "model.img_size=32", "data.transforms.resize=32", "data.transforms.crop=32"]


def history(run_dir):
    with (run_dir / "history.csv").open() as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("strategy,extra", [
    ("full", []),
    ("linear", ["optim.lr=0.02"]),
    ("partial", ["strategy.unfreeze_last=1"]),
    ("gradual", ["strategy.unfreeze_every=1"]),
    ("attention", VIT + ["optim.lr=0.003"]),
    ("lora", VIT + ["optim.lr=0.01", "strategy.lora_rank=4"]),
])
def test_each_strategy_trains_and_loss_drops(tiny_overrides, strategy, extra):
    cfg = load_config(None, tiny_overrides + [f"strategy.name={strategy}", "train.epochs=3", "schedule.name=cosine"] + extra)
    result = train(cfg, progress=False)
    rows = history(result.run_dir)
    assert len(rows) == 3
    assert float(rows[-1]["train/loss"]) < float(rows[0]["train/loss"])
    assert result.test["n"] == 12
    if strategy == "gradual":
        assert [float(r["train/open_stages"]) for r in rows] == [0.0, 1.0, 2.0]
        assert float(rows[0]["train/trainable_params"]) < float(rows[2]["train/trainable_params"])


def test_run_folder_holds_everything(tiny_overrides):
    result = train(load_config(None, tiny_overrides), progress=False)
    run = result.run_dir
    for name in ("config.yaml", "classes.json", "history.csv", "learning_curves.png", "confusion_matrix.png",
                 "metrics.json", "predictions_test.csv", "checkpoints/best.ckpt", "checkpoints/last.ckpt",
                 "checkpoints/model.safetensors"):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["test"]) >= {"top1", "f1_macro", "precision_macro", "recall_macro", "auroc_macro",
                                    "ece", "per_class_accuracy", "confusion_matrix"}
    assert "top5" not in metrics["test"] and "top3" not in metrics["test"]  # k >= 3 classes: 1.0 by construction
    assert metrics["parameters"]["trainable"] == metrics["parameters"]["total"] > 0
    with (run / "predictions_test.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 12
    assert all(row["target_name"] == Path(row["image"]).parent.name for row in rows)  # the folder is the class
    for row in rows:
        probs = [float(row[f"p_{c}"]) for c in ("blue", "green", "red")]
        assert abs(sum(probs) - 1) < 1e-4
        assert row["predicted_name"] == ("blue", "green", "red")[probs.index(max(probs))]
    assert sum(r["target"] == r["predicted"] for r in rows) / 12 == pytest.approx(metrics["test"]["top1"])
    assert json.loads((run / "classes.json").read_text()) == ["blue", "green", "red"]
    again = train(load_config(None, tiny_overrides), progress=False)
    assert again.run_dir.name == "run-2"  # a second run never overwrites the first


def test_same_seed_same_metrics(tiny_overrides):
    a = train(load_config(None, tiny_overrides), progress=False)
    b = train(load_config(None, tiny_overrides), progress=False)
    assert a.test["top1"] == b.test["top1"] and a.test["ece"] == b.test["ece"]
    assert [r["train/loss"] for r in history(a.run_dir)] == [r["train/loss"] for r in history(b.run_dir)]


def test_resume_without_checkpoint_is_a_clear_error(tmp_path):
    (tmp_path / "config.yaml").write_text("seed: 1\n")
    with pytest.raises(FgvcError, match="no checkpoints/last.ckpt"):
        resume(tmp_path, progress=False)


def test_mixup_ema_early_stopping_mlp_head(tiny_overrides):
    cfg = load_config(None, tiny_overrides + [
        "train.epochs=3", "data.mixup.mixup_alpha=0.4", "data.mixup.cutmix_alpha=1.0", "loss.name=soft_target",
        "train.ema_decay=0.9", "train.early_stopping_patience=1", "model.head_hidden=[16]",
        "train.gradient_clip_val=1.0", "train.accumulate_grad_batches=2", "optim.l1=1e-6",
        "optim.penalty_p=inf", "optim.penalty_weight=1e-4"])
    result = train(cfg, progress=False)
    assert 1 <= len(history(result.run_dir)) <= 3
    assert result.test["n"] == 12


def test_cli_train_eval_predict(tiny_overrides, colour_data, tmp_path):
    args = [a for s in tiny_overrides for a in ("--set", s)]
    (tmp_path / "exp.yaml").write_text("seed: 42\n")
    trained = runner.invoke(app, ["train", str(tmp_path / "exp.yaml"), *args, "--no-progress"])
    assert trained.exit_code == 0, trained.output
    assert "test metrics" in trained.output and "top1" in trained.output
    run_dir = tmp_path / "runs" / "run"
    written_by_training = json.loads((run_dir / "metrics.json").read_text())["val"]
    (run_dir / "metrics_val.json").unlink()  # so only `fgvc eval` can write it
    evaluated = runner.invoke(app, ["eval", str(run_dir), "--split", "val"])
    assert evaluated.exit_code == 0, evaluated.output
    again = json.loads((run_dir / "metrics_val.json").read_text())
    assert "val: per class" in evaluated.output and "support" in evaluated.output
    assert sum(row["support"] for row in again["per_class"].values()) == again["n"]
    assert again["n"] == 12 and again["top1"] == written_by_training["top1"]
    assert again["confusion_matrix"] == written_by_training["confusion_matrix"]
    run = load_trained(run_dir)
    red = sorted((colour_data / "test" / "red").iterdir())
    expected = predict_probs(run.model, images_in_folder(colour_data / "test" / "red", run.class_names),
                             run.eval_transform).argmax(-1)
    out = tmp_path / "sub.csv"
    predicted = runner.invoke(app, ["predict", str(run_dir), str(colour_data / "test" / "red"), "--out", str(out)])
    assert predicted.exit_code == 0, predicted.output
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["id", "label"] and len(rows) == 5
    assert [r[0] for r in rows[1:]] == [p.stem for p in red]
    assert [r[1] for r in rows[1:]] == [run.class_names[int(i)] for i in expected]
    probs = tmp_path / "probs.csv"
    wrote = runner.invoke(app, ["predict", str(run_dir), str(colour_data / "test" / "red"), "--out", str(probs),
                                "--format", "probs"])
    assert wrote.exit_code == 0, wrote.output
    rows = list(csv.reader(probs.open()))
    assert rows[0] == ["id", "blue", "green", "red"]
    for row, label in zip(rows[1:], expected):
        values = [float(x) for x in row[1:]]
        assert abs(sum(values) - 1) < 1e-4 and values.index(max(values)) == int(label)
    # single files (and a folder) in one call; a few images get their top-k printed
    one = runner.invoke(app, ["predict", str(run_dir), str(red[0]), str(colour_data / "test" / "blue"),
                              "--out", str(tmp_path / "one.csv")])
    assert one.exit_code == 0, one.output
    rows = list(csv.reader((tmp_path / "one.csv").open()))
    assert [r[0] for r in rows[1:]] == [red[0].stem] + [p.stem for p in sorted((colour_data / "test" / "blue").iterdir())]
    assert "top-3 classes" in one.output and f"{red[0].name} " in one.output
    assert f"{run.class_names[int(expected[0])]} " in one.output.split(red[0].name)[1].splitlines()[0]
    bad = runner.invoke(app, ["predict", str(run_dir), str(run_dir / "config.yaml")])
    assert bad.exit_code == 2 and "config.yaml is not an image file" in bad.output


def test_eval_reads_eval_split_and_top_k_from_the_config(tiny_overrides):
    result = train(load_config(None, tiny_overrides + ["eval.split=val", "eval.top_k=2"]), progress=False)
    assert "top2" in result.test and "top2" in result.metrics["val"]
    (result.run_dir / "metrics_val.json").unlink()
    evaluated = runner.invoke(app, ["eval", str(result.run_dir)])
    assert evaluated.exit_code == 0, evaluated.output
    assert "val metrics" in evaluated.output and "top2" in evaluated.output
    assert json.loads((result.run_dir / "metrics_val.json").read_text())["n"] == 12

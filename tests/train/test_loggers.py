"""train.loggers: Lightning's CSV, TensorBoard and MLflow loggers, read back from what they wrote."""

import csv

import pytest

from fgvc.config import load_config
from fgvc.errors import ConfigError
from fgvc.train.run import resume, train


def test_csv_tensorboard_and_mlflow_hold_the_runs_metrics(tiny_overrides, tmp_path):
    pytest.importorskip("tensorboard")
    pytest.importorskip("mlflow")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = load_config(None, tiny_overrides + ["train.epochs=3", "train.loggers=[csv,tensorboard,mlflow]",
                                              f"train.mlflow_uri={uri}"])
    result = train(cfg, progress=False)
    run_dir = result.run_dir
    val_top1 = [float(row["val/top1"]) for row in csv.DictReader((run_dir / "history.csv").open())]
    assert len(val_top1) == 3

    rows = [row for row in csv.DictReader((run_dir / "logs" / "metrics.csv").open()) if row.get("val/top1")]
    assert [float(r["val/top1"]) for r in rows] == pytest.approx(val_top1)

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    assert "val/top1" in events.Tags()["scalars"] and "train/loss" in events.Tags()["scalars"]
    assert [e.value for e in events.Scalars("val/top1")] == pytest.approx(val_top1)

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("run").experiment_id])
    assert len(runs) == 1 and runs[0].data.tags["run_dir"] == str(run_dir.resolve())
    history = client.get_metric_history(runs[0].info.run_id, "val/top1")
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx(val_top1)


def test_resumed_run_keeps_one_csv_log(tiny_overrides, tmp_path):
    cfg = load_config(None, tiny_overrides + ["train.epochs=2"])
    run_dir = train(cfg, progress=False).run_dir
    (run_dir / "metrics.json").unlink()
    before = list(csv.DictReader((run_dir / "logs" / "metrics.csv").open()))
    resume(run_dir, progress=False)
    after = list(csv.DictReader((run_dir / "logs" / "metrics.csv").open()))
    # a resume keeps the earlier epochs' rows and appends its own
    assert [r for r in after if r["epoch"] == "0"] == [r for r in before if r["epoch"] == "0"] != []
    assert any(r["epoch"] == "1" and r["val/top1"] for r in after)


def test_unknown_logger_is_a_config_error(tiny_overrides):
    with pytest.raises(ConfigError, match="train.loggers"):
        load_config(None, tiny_overrides + ["train.loggers=[csv,neptune]"])

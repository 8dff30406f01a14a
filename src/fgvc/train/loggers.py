"""Lightning's loggers for a run (``train.loggers``): every metric the module logs, per step and epoch,
to CSV in the run folder, TensorBoard event files in the run folder, an MLflow run, or Weights & Biases."""

from __future__ import annotations

from pathlib import Path

from fgvc.config import ExperimentConfig
from fgvc.errors import ConfigError
from fgvc.runfolder import RunFolder

INSTALL = {"tensorboard": "tensorboard", "mlflow": "mlflow-skinny", "wandb": "wandb"}


def _csv_logger(loggers, run_dir: Path):
    """Lightning's CSVLogger, keeping the rows of earlier epochs when a run resumes (it deletes
    metrics.csv when it starts; put back, its writer appends)."""
    import warnings

    log_file = RunFolder(run_dir).csv_log
    kept = log_file.read_bytes() if log_file.is_file() else None
    logger = loggers.CSVLogger(save_dir=str(run_dir), name=RunFolder.LOGS, version="")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*Experiment logs directory.*")
        writer = logger.experiment  # creates the writer now, which clears the folder
    if kept is not None:
        log_file.write_bytes(kept)
        header = kept.decode().splitlines()[0].split(",") if kept.strip() else []
        writer.metrics_keys = sorted(header)  # the writer appends under the old header (or widens it)
    return logger


def default_mlflow_uri() -> str:
    """A local MLflow store: mlruns/mlflow.db (SQLite; MLflow no longer develops its plain-file store)."""
    folder = Path("mlruns").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'mlflow.db'}"


def build_loggers(cfg: ExperimentConfig, run_dir: Path) -> list:
    from lightning.pytorch import loggers

    run_dir = Path(run_dir)
    name = cfg.output.name or run_dir.name
    built = []
    for kind in dict.fromkeys(cfg.train.loggers):
        try:
            if kind == "csv":
                built.append(_csv_logger(loggers, run_dir))
            elif kind == "tensorboard":
                built.append(loggers.TensorBoardLogger(save_dir=str(run_dir), name="tensorboard", version="",
                                                       default_hp_metric=False))
            elif kind == "mlflow":
                uri = cfg.train.mlflow_uri or default_mlflow_uri()
                built.append(loggers.MLFlowLogger(experiment_name=name, run_name=run_dir.name, tracking_uri=uri,
                                                  tags={"run_dir": str(run_dir.resolve())}))
            elif kind == "wandb":
                built.append(loggers.WandbLogger(project=name, name=run_dir.name, save_dir=str(run_dir)))
        except (ModuleNotFoundError, ImportError) as exc:
            raise ConfigError(f"train.loggers: {kind} needs a package that is not installed "
                              f"(pip install {INSTALL[kind]}): {exc}") from None
    return built

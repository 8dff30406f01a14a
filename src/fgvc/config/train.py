"""How a run trains: the engine and its settings (epochs, batches, precision, devices, monitoring),
the pipeline engine's stages and the probe engine's head."""

from __future__ import annotations

from typing import Literal, Optional, Union

from pydantic import Field, field_validator

from fgvc.config.section import Section
from fgvc.registry import ENGINES, POOLINGS


def reported_metrics(top_k: int) -> list[str]:
    """What every epoch of a run reports, so what ``train.monitor`` (and a search's metric) can name;
    ``val/top<k>`` with ``eval.top_k`` (reported when k is below the class count)."""
    extra = [f"val/top{top_k}"] if top_k > 1 else []
    return ["val/loss", "val/top1", "val/f1_macro", *extra, "train/loss", "train/top1"]


class PipelineConfig(Section):
    """Pipeline parallelism: the model cut into sequential stages on separate devices/processes."""

    stages: int = Field(2, ge=1, description="pipeline stages (processes or devices), each a run of blocks")
    microbatches: int = Field(4, ge=1, description="micro-batches each batch is split into; more: a smaller bubble")
    schedule: Literal["gpipe", "1f1b"] = Field(
        "1f1b", description="gpipe: all forwards, then all backwards; 1f1b: interleaved, fewer activations held")
    split: Union[Literal["balanced", "equal"], list[int]] = Field(
        "balanced", description="where stages are cut: balanced (measured, slowest stage minimised), equal "
                                "(same number of blocks), or explicit cut points (block indices)")
    memory_limit_gb: Optional[float] = Field(None, gt=0, description="balanced: memory per stage it must fit "
                                                                     "(parameters, gradients, optimizer state, "
                                                                     "activations in flight); null: no limit")


class TrainConfig(Section):
    epochs: int = Field(10, ge=1, description="passes over the training split")
    batch_size: int = Field(32, ge=1, description="images per training step (per device)")
    precision: Literal["32", "16-mixed", "bf16-mixed"] = Field("32", description="32, 16-mixed (GPU) or bf16-mixed")
    accumulate_grad_batches: int = Field(1, ge=1,
        description="steps whose gradients are summed before each optimizer step")
    gradient_clip_val: Optional[float] = Field(None, gt=0,
        description="clip the gradient norm to this value (None: off)")
    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"] = Field("auto", description="auto, cpu, gpu/cuda or mps")
    devices: Union[int, Literal["auto"]] = Field("auto", description="devices per node (auto: all that are visible)")
    num_nodes: int = Field(1, ge=1, description="machines in a multi-node run")
    engine: str = Field("lightning", description="the training engine: how the run trains")
    distribution: str = Field("auto", description="lightning engine: Lightning's distribution strategy "
                                                  "(auto, ddp, ddp_spawn, fsdp, ...)")
    channels_last: bool = Field(False, description="NHWC memory layout for CNNs (faster on GPUs and some CPUs)")
    compile: bool = Field(False, description="torch.compile the model")
    ema_decay: Optional[float] = Field(None, gt=0, lt=1,
        description="keep an exponential moving average of the weights with this decay and evaluate it (None: off)")
    early_stopping_patience: Optional[int] = Field(None, ge=1,
        description="stop after this many epochs without improvement of train.monitor (None: off)")
    monitor: str = Field("val/top1", description="metric that picks best.ckpt (and early stopping)")
    deterministic: bool = Field(True,
        description="deterministic algorithms (same config and seed: same metrics on the same machine)")
    loggers: list[Literal["csv", "tensorboard", "mlflow", "wandb"]] = Field(
        default_factory=lambda: ["csv"], description="Lightning loggers: csv (RUN/logs/metrics.csv), tensorboard "
        "(RUN/tensorboard: tensorboard --logdir runs), mlflow (train.mlflow_uri, default ./mlruns/mlflow.db), wandb")
    mlflow_uri: Optional[str] = Field(None, description="MLflow tracking URI (http://..., sqlite:///...); "
                                                        "null: sqlite:///./mlruns/mlflow.db")
    threads: Optional[int] = Field(None, ge=1, description="torch CPU threads of the run; CPU results depend on "
                                                           "it in the last bits. null: torch's default (all cores), "
                                                           "or the Ray executor's CPU share")
    keep_cpu_memory: bool = Field(True, description="keep freed tensor memory in the process for the next step "
                                  "(glibc: mmap off, no trim) instead of faulting it in again: CPU steps on large "
                                  "images run up to 2.5x faster (bench/cpu_memory.py); the process keeps its peak "
                                  "memory. Results are the same either way")
    limit_train_batches: Optional[Union[int, float]] = Field(None,
        description="train on only this many batches (int) or fraction (float) per epoch: for quick checks")
    limit_val_batches: Optional[Union[int, float]] = Field(None,
        description="validate on only this many batches or this fraction")
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig,
                                     description="pipeline engine: stages, micro-batches, schedule, cuts")

    @field_validator("engine")
    @classmethod
    def _registered(cls, engine: str) -> str:
        return ENGINES.check(engine)

    @field_validator("precision", mode="before")
    @classmethod
    def _precision_text(cls, value):
        return str(value) if isinstance(value, int) else value  # YAML reads `precision: 32` as a number


class ProbeConfig(Section):
    """The probe engine: a frozen backbone's features, computed once and cached, and a head trained on them."""

    features: Literal["model", "clip"] = Field(
        "model", description="the frozen network: model = the model section's; clip = the CLIP image tower the "
                             "zero_shot section names, its embedding L2-normalised as CLIP's own")
    head: Literal["linear", "mlp", "logreg", "regression"] = Field(
        "linear", description="torch linear / MLP head, scikit-learn's logistic regression, or regression: one "
                              "ridge output on the class position in [0, 1], rounded to the nearest class "
                              "(Deitsch et al. 2019; for ordered classes such as ELPV's grades)")
    hidden: int = Field(256, ge=1, description="mlp: hidden width")
    c: Union[Literal["auto"], float] = Field(
        1.0, description="logreg: inverse regularisation (regression: ridge alpha = 1/c); auto: chosen from a "
                         "grid by the val split's log-loss")
    views: int = Field(0, ge=0, description="0 = one plain view; N = N augmented views per training image")
    runtime: Literal["auto", "torch", "onnx"] = Field(
        "auto", description="the backbone pass in torch (channels_last for CNNs) or ONNX Runtime (CPU, ~7x "
                            "faster); auto: ONNX Runtime on the CPU from 256 images on")
    layers: int = Field(1, ge=1, description="pool the last N stages of a CNN (1: the final layer)")
    pooling: list[str] = Field(
        default_factory=lambda: ["avg"], min_length=1,
        description="how each layer is pooled; [avg, max] keeps small strong details (a thin crack) that "
                    "averaging dilutes")
    projection: Optional[int] = Field(
        None, ge=2, description="project each pooled map onto this many channels first (a fixed random "
                                "orthonormal projection): second-order poolings (bilinear, cov) need it on wide "
                                "maps; null: no projection")
    standardize: bool = Field(False, description="logreg: scale every feature to unit variance on train first "
                                                 "(layers of different scales weigh alike)")

    @property
    def clip_features(self) -> bool:
        """True when the features are a CLIP image tower's (zero_shot.model), not the model section's."""
        return self.features == "clip"

    @property
    def pooled_layers(self) -> bool:
        """True when the features are more than the final layer's average (layers / pooling)."""
        return self.layers != 1 or self.pooling != ["avg"] or self.projection is not None

    @field_validator("c")
    @classmethod
    def _c_positive(cls, value):
        if value != "auto" and not value > 0:
            raise ValueError(f"c must be positive or auto (got {value})")
        return value

    @field_validator("pooling")
    @classmethod
    def _registered_poolings(cls, pooling: list[str]) -> list[str]:
        return [POOLINGS.check(name) for name in pooling]

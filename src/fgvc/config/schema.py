"""Typed schema of one experiment: data, model, strategy, optimizer, schedule, loss, training, evaluation,
output. Everything is validated before any work starts."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml
from pydantic import Field, ValidationInfo, field_validator, model_validator

from fgvc.config.generative import DiffusionConfig, GanConfig, StableDiffusionConfig
from fgvc.config.section import Section

DatasetName = Literal[
    "elpv",
    "cub200",
    "stanford_dogs",
    "flowers102",
    "fgvc_aircraft",
    "stanford_cars",
    "oxford_pets",
    "image_folder",
    "kaggle_csv",
    "fashion_mnist",
]

# Which values of `data.label` each data set understands (the first is the default).
LABEL_CHOICES: dict[str, tuple[str, ...]] = {
    "elpv": ("grade", "binary", "type"),
    "fgvc_aircraft": ("variant", "family", "manufacturer"),
}

# Friendly names for augmentation policies; anything else is passed to timm as its own string
# (e.g. "rand-m9-mstd0.5-inc1", "augmix-m5-w4-d2", "original", "v0").
AUTO_AUGMENT_ALIASES = {
    "randaugment": "rand-m9-mstd0.5-inc1",
    "autoaugment": "original",
    "trivialaugment": "trivialaugment",
}


class CsvConfig(Section):
    """Kaggle-style CSV labels: one row per training image, `id,label`."""

    file: str = Field("labels.csv", description="CSV file, relative to data.root")
    id_column: str = Field("id", description="column of labels.csv holding each image's id (file name without folder)")
    label_column: str = Field("label", description="column of labels.csv holding each image's class name")
    image_dir: str = Field("train", description="folder of the training images, relative to data.root")
    extension: str = Field(
        "auto", description="appended to the id ('.jpg', '.png'); 'auto' finds it, '' if the id has one"
    )
    test_dir: Optional[str] = Field(None, description="folder of unlabelled test images (e.g. test)")


class TransformConfig(Section):
    """Train/eval pipelines, built with timm's create_transform."""

    resize: int = Field(256, gt=0, description="eval: resize the short side to this, then centre-crop")
    crop: int = Field(224, gt=0, description="network input size (train and eval)")
    train_crop_mode: Literal["rrc", "rkrc", "rkrr"] = Field("rrc",
        description="training crop: rrc = RandomResizedCrop (scale/ratio), center = resize then centre crop")
    scale: tuple[float, float] = Field((0.25, 1.0),
        description="RandomResizedCrop: range of the crop's area as a fraction of the image")
    ratio: tuple[float, float] = Field((3 / 4, 4 / 3),
        description="RandomResizedCrop: range of the crop's aspect ratio")
    hflip: float = Field(0.5, ge=0, le=1, description="probability of a horizontal flip in training")
    vflip: float = Field(0.0, ge=0, le=1, description="probability of a vertical flip in training")
    rot90: float = Field(0.0, ge=0, le=1, description="probability of a random 90/180/270-degree rotation; "
                                                      "with hflip and vflip at 0.5: the whole D4 group (square cells)")
    auto_augment: Optional[str] = Field(None,
        description="timm auto-augment policy, e.g. rand-m9-mstd0.5 (RandAugment) or augmix-m5; none: off")
    color_jitter: float = Field(0.0, ge=0,
        description="strength of brightness/contrast/saturation jitter in training (0: off)")
    re_prob: float = Field(0.0, ge=0, le=1, description="random erasing probability")
    re_mode: Literal["const", "rand", "pixel"] = Field("pixel",
        description="random erasing fill: pixel (per-pixel noise), rand (per-channel), const (zeros)")
    re_count: int = Field(1, ge=1, description="random erasing: boxes erased per image")
    interpolation: Optional[Literal["bilinear", "bicubic", "nearest", "random"]] = Field(None,
        description="resize interpolation (bilinear, bicubic, ...); default: the pretrained model's")
    mean: Optional[tuple[float, float, float]] = Field(
        None, description="null: take it from the model's pretrained config"
    )
    std: Optional[tuple[float, float, float]] = Field(None,
        description="normalisation std per channel; default: the pretrained model's (see mean)")

    @field_validator("crop")
    @classmethod
    def _crop_fits(cls, crop: int, info: ValidationInfo) -> int:
        resize = info.data.get("resize")
        if resize is not None and crop > resize:
            raise ValueError(f"crop ({crop}) is larger than resize ({resize}); use crop <= resize")
        return crop

    @field_validator("scale")
    @classmethod
    def _scale_range(cls, scale: tuple[float, float]) -> tuple[float, float]:
        if not 0 < scale[0] <= scale[1] <= 1:
            raise ValueError(f"scale {list(scale)} must satisfy 0 < min <= max <= 1")
        return scale

    @field_validator("ratio")
    @classmethod
    def _ratio_range(cls, ratio: tuple[float, float]) -> tuple[float, float]:
        if not 0 < ratio[0] <= ratio[1]:
            raise ValueError(f"ratio {list(ratio)} must satisfy 0 < min <= max")
        return ratio

    @field_validator("std")
    @classmethod
    def _std_positive(cls, std):
        if std is not None and min(std) <= 0:
            raise ValueError(f"std {list(std)} must be positive")
        return std

    @field_validator("auto_augment")
    @classmethod
    def _known_policy(cls, value: Optional[str]) -> Optional[str]:
        if value is None or value in AUTO_AUGMENT_ALIASES:
            return value
        if value.startswith(("rand", "augmix")) or value in ("original", "originalr", "v0", "v0r", "3a"):
            return value
        raise ValueError(
            f"unknown augmentation policy {value!r}; use one of {sorted(AUTO_AUGMENT_ALIASES)} "
            "or a timm policy string such as 'rand-m9-mstd0.5-inc1'"
        )


class MixupConfig(Section):
    """Mixup / CutMix (timm's Mixup); used by the training engine."""

    mixup_alpha: float = Field(0.0, ge=0, description="mixup Beta(alpha, alpha) strength; 0: off")
    cutmix_alpha: float = Field(0.0, ge=0, description="CutMix Beta(alpha, alpha) strength; 0: off")
    prob: float = Field(1.0, ge=0, le=1, description="probability that a batch is mixed at all")
    switch_prob: float = Field(0.5, ge=0, le=1, description="when both are on: probability of CutMix rather than mixup")
    mode: Literal["batch", "pair", "elem"] = Field("batch",
        description="mix per batch, per pair of images or per element")

    @property
    def enabled(self) -> bool:
        return self.prob > 0 and (self.mixup_alpha > 0 or self.cutmix_alpha > 0)


class SyntheticConfig(Section):
    """Generated images (a folder with manifest.csv) mixed into the training split, never val or test."""

    path: Path
    ratio: Optional[float] = Field(None, ge=0, description="synthetic images per real training image")
    count: Optional[int] = Field(None, ge=0, description="or an absolute number of synthetic images")


class DataConfig(Section):
    name: DatasetName = Field("image_folder",
        description="which data set adapter reads data.root (image_folder, csv, elpv, cub200, ...)")
    root: Optional[Path] = Field(None, description="data set folder; null for packaged data (elpv)")
    label: Optional[str] = Field(None, description="which label to learn, e.g. elpv: grade|type")
    crop_to_box: bool = Field(False, description="CUB-200: crop each image to the bird's box")
    test_root: Optional[Path] = Field(None, description="image_folder: folder of the test split")
    download: bool = Field(False, description="let torchvision download the data set (online users only)")
    official_val: bool = Field(False, description="use the data set's own val split where it has one")
    csv: CsvConfig = Field(default_factory=CsvConfig, description="layout of a csv data set (data.name: csv)")
    val_fraction: float = Field(0.1, ge=0, lt=1,
        description="fraction of the training split held out, stratified, for validation (0: none)")
    split_seed: int = Field(0, description="seed of the train/val split, kept apart from the training seed")
    test_split_seed: Optional[int] = Field(
        None, description="elpv: draw the 25% test split with this seed (split-to-split variance); null: the fixed split"
    )
    limit_per_class: Optional[int] = Field(None, gt=0, description="keep at most N training images per class")
    folds: Optional[int] = Field(None, ge=2, description="k-fold: split the training part into this many folds")
    fold: Optional[int] = Field(None, ge=0, description="k-fold: which fold is the val split (0-based)")
    num_workers: int = Field(2, ge=0, description="DataLoader worker processes that decode and augment images")
    uint8_batches: bool = Field(True,
        description="training: workers send uint8 images, normalised (and randomly erased) where the model runs")
    cache_dir: Path = Field(Path("~/.cache/fgvc"),
        description="where prepared data is kept: Fashion-MNIST, cached features, decoded images")
    decoded_cache: bool = Field(False,
        description="training: decode and resize each image once into a memory-mapped uint8 store under "
                    "cache_dir; crops and flips are cut from it every epoch")
    jpeg_decode: Literal["workers", "device"] = Field("workers",
        description="training: workers = PIL in the loader processes; device = torchvision.io.decode_jpeg "
                    "where the model runs (nvJPEG on a GPU), with crops and flips there too")
    transforms: TransformConfig = Field(default_factory=TransformConfig,
        description="resizing, cropping, augmentation and normalisation")
    mixup: MixupConfig = Field(default_factory=MixupConfig,
        description="mixup / CutMix on training batches (timm's Mixup)")
    synthetic: Optional[SyntheticConfig] = Field(None, description="generated images added to train only")

    @field_validator("label")
    @classmethod
    def _label_known(cls, label: Optional[str], info: ValidationInfo) -> Optional[str]:
        name = info.data.get("name")
        choices = LABEL_CHOICES.get(name)
        if label is not None:
            if choices is None:
                raise ValueError(f"data set {name!r} has a single label; remove data.label")
            if label not in choices:
                raise ValueError(f"label {label!r} is not one of {list(choices)} for {name}")
        return label


    @model_validator(mode="after")
    def _device_decoding(self) -> "DataConfig":
        """What decoding on the device cannot combine with, each named with the setting that conflicts."""
        if self.jpeg_decode != "device":
            return self
        t = self.transforms
        conflicts = {
            "data.uint8_batches: false": not self.uint8_batches,
            "data.decoded_cache": self.decoded_cache,
            f"data.transforms.auto_augment ({t.auto_augment})": bool(t.auto_augment),
            "data.transforms.color_jitter": t.color_jitter > 0,
            f"data.transforms.train_crop_mode: {t.train_crop_mode}": t.train_crop_mode != "rrc",
        }
        named = [name for name, clash in conflicts.items() if clash]
        if named:
            raise ValueError(f"data.jpeg_decode: device (crops, flips and 90-degree turns on the device) cannot be "
                             f"combined with {', '.join(named)}; remove it or use data.jpeg_decode: workers")
        return self

    @field_validator("test_split_seed")
    @classmethod
    def _test_split_movable(cls, seed: Optional[int], info: ValidationInfo) -> Optional[int]:
        if seed is not None and info.data.get("name") != "elpv":
            raise ValueError(f"only elpv draws its own test split; {info.data.get('name')} has an official one")
        return seed

    @field_validator("fold")
    @classmethod
    def _fold_in_range(cls, fold: Optional[int], info: ValidationInfo) -> Optional[int]:
        folds = info.data.get("folds")
        if fold is not None and (folds is None or fold >= folds):
            raise ValueError(f"fold {fold} needs data.folds > {fold} (got folds={folds})")
        return fold


class ModelConfig(Section):
    name: str = Field("resnet50",
        description="backbone name in its source (timm: resnet50, tf_efficientnet_lite0, vit_small_patch16_224, ...)")
    source: Literal["timm", "torchvision", "torch_hub"] = Field("timm",
        description="where the backbone comes from: timm, torchvision or torch_hub")
    pretrained: bool = Field(True,
        description="start from pretrained weights (hub download, or model.weights from a file)")
    pretrained_file: Optional[str] = Field(
        None, description=".pth/.safetensors file, or package:MODULE/path for weights a pip package ships"
    )
    key_mapping: Literal["auto", "by_name", "by_order"] = Field(
        "auto", description="how a foreign checkpoint's keys map onto the model"
    )
    hub_repo: Optional[str] = Field(None, description="torch_hub: repository, e.g. facebookresearch/dinov2")
    hub_entry: Optional[str] = Field(None, description="torch_hub: entry point in that repository, e.g. dinov2_vits14")
    hub_kwargs: dict[str, Any] = Field(default_factory=dict,
        description="torch_hub: extra keyword arguments for the entry point")
    hub_replace_head: bool = Field(True, description="torch_hub: replace the last Linear with a new head")
    img_size: Optional[int] = Field(None, gt=0, description="input size for models that fix it (ViT); null: default")
    head_hidden: list[int] = Field(default_factory=list, description="MLP head hidden sizes, e.g. [256]")
    head_dropout: float = Field(0.0, ge=0, lt=1, description="dropout before the new classifier head")
    keep_pretrained_head: bool = Field(False, description="keep the 1000-class head and put the new head on top")
    drop_rate: float = Field(0.0, ge=0, lt=1,
        description="timm drop_rate: dropout inside the backbone before its pooling")
    drop_path_rate: float = Field(0.0, ge=0, lt=1,
        description="stochastic depth: probability of skipping a residual block in training")
    attn_drop_rate: float = Field(0.0, ge=0, lt=1, description="ViT: dropout on the attention weights")

    @model_validator(mode="after")
    def _file_needs_pretrained(self) -> "ModelConfig":
        if self.pretrained_file and not self.pretrained:
            raise ValueError(
                f"model.pretrained_file is set ({self.pretrained_file}) but model.pretrained is false, so the file "
                "would be ignored; set model.pretrained: true to load it, or remove model.pretrained_file"
            )
        return self


class StrategyConfig(Section):
    name: Literal["linear", "partial", "full", "lora", "attention", "gradual", "features"] = Field("full",
        description="transfer strategy: linear (head only), partial (head + last blocks), full, lora, attention (ViT attention only), gradual (unfreeze stage by stage), features (cached features + probe)")
    unfreeze_last: int = Field(1, ge=0, description="partial: stages/blocks trained besides the head")
    freeze_bn: bool = Field(True,
        description="keep frozen blocks' BatchNorm statistics fixed (eval mode) while training")
    head_lr_mult: float = Field(1.0, gt=0, description="learning rate of the new head = optim.lr x this")
    layer_decay: Optional[float] = Field(None, gt=0, le=1,
        description="layer-wise lr decay: each block towards the input gets this factor more (None: off)")
    lora_rank: int = Field(8, ge=1, description="LoRA: rank of the low-rank update")
    lora_alpha: float = Field(16.0, gt=0, description="LoRA: scaling of the update (alpha / rank)")
    lora_dropout: float = Field(0.0, ge=0, lt=1, description="LoRA: dropout on the adapter's input")
    lora_targets: list[str] = Field(default_factory=lambda: ["qkv"],
        description="LoRA: names of the linear layers that get adapters (peft target_modules)")
    unfreeze_every: int = Field(1, ge=1, description="gradual: epochs between unfreezing stages")
    attention_blocks: Optional[int] = Field(None, ge=1, description="attention: only the last N blocks (null: all)")
    probe_head: Literal["linear", "mlp", "logreg"] = Field(
        "linear", description="features: torch linear / MLP head, or scikit-learn logistic regression"
    )
    probe_hidden: int = Field(256, ge=1, description="features: MLP hidden width")
    probe_c: Union[Literal["auto"], float] = Field(
        1.0, description="features, logreg: inverse regularisation; auto: chosen from a grid by the val split's log-loss"
    )
    feature_views: int = Field(0, ge=0, description="features: 0 = one plain view; N = N augmented views per image")
    feature_engine: Literal["auto", "torch", "onnx"] = Field(
        "auto", description="features: the backbone pass in torch (channels_last for CNNs) or ONNX Runtime "
                            "(CPU, ~7x faster); auto: ONNX Runtime on the CPU from 256 images on")
    probe_layers: int = Field(1, ge=1, description="features: pool the last N stages of a CNN (1: the final layer)")
    probe_pooling: list[Literal["avg", "max"]] = Field(
        default_factory=lambda: ["avg"], min_length=1, description="features: how each layer is pooled; [avg, max] keeps "
                                                                   "small strong details (a thin crack) that averaging dilutes")
    probe_standardize: bool = Field(False, description="features, logreg: scale every feature to unit variance on "
                                                       "train first (layers of different scales weigh alike)")


    @property
    def pooled_layers(self) -> bool:
        """True when the probe's features are more than the final layer's average (probe_layers / probe_pooling)."""
        return self.probe_layers != 1 or self.probe_pooling != ["avg"]

    @field_validator("probe_c")
    @classmethod
    def _c_positive(cls, value):
        if value != "auto" and not value > 0:
            raise ValueError(f"probe_c must be positive or auto (got {value})")
        return value


class OptimConfig(Section):
    name: str = Field("adamw", description="sgd, adam, adamw or any timm optimizer name")
    lr: float = Field(1e-3, gt=0, description="peak learning rate (after warmup)")
    weight_decay: float = Field(0.05, ge=0,
        description="decoupled weight decay (AdamW) or L2 (SGD); not applied to norms and biases")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum")
    nesterov: bool = Field(False, description="SGD: Nesterov momentum")
    betas: tuple[float, float] = Field((0.9, 0.999), description="Adam/AdamW betas")
    l1: float = Field(0.0, ge=0, description="L1 penalty weight")
    penalty_p: Union[float, Literal["inf"]] = Field(2.0, description="p of the extra Lp penalty")
    penalty_weight: float = Field(0.0, ge=0,
        description="L2-SP: weight of the pull of fine-tuned weights towards the pretrained ones (0: off)")


class ScheduleConfig(Section):
    name: Literal["none", "step", "multistep", "cosine", "cosine_restarts", "plateau", "onecycle"] = Field("cosine",
        description="learning-rate schedule over the epochs")
    warmup_epochs: float = Field(0.0, ge=0,
        description="linear warmup from warmup_lr_init to optim.lr over this many epochs (fractions allowed)")
    warmup_lr_init: float = Field(1e-6, ge=0, description="learning rate at the start of warmup")
    min_lr: float = Field(0.0, ge=0, description="lowest learning rate the schedule decays to")
    step_size: int = Field(30, ge=1, description="step: epochs between decays")
    milestones: list[int] = Field(default_factory=list,
        description="multistep: epochs at which the lr is multiplied by gamma")
    gamma: float = Field(0.1, gt=0, description="step / multistep / plateau: factor the lr is multiplied by")
    restart_epochs: int = Field(10, ge=1, description="cosine_restarts: epochs in the first cycle")
    patience: int = Field(5, ge=0, description="plateau: epochs without improvement before the lr drops")


class LossConfig(Section):
    name: Literal["ce", "label_smoothing", "focal", "soft_target", "ordinal"] = Field(
        "ce", description="ordinal: soft labels that favour neighbouring classes, for ordered classes (ELPV grades)")
    smoothing: float = Field(0.1, ge=0, lt=1,
        description="label_smoothing: probability mass spread over the other classes")
    ordinal_scale: float = Field(2.0, gt=0, description="ordinal: softmax(-scale * distance^2); larger is closer to CE")
    focal_gamma: float = Field(2.0, ge=0, description="focal: focusing exponent (0 = cross-entropy)")
    focal_alpha: Optional[float] = Field(None, ge=0, le=1, description="focal: weight of the positive term (None: off)")
    class_weights: Literal["none", "balanced", "sqrt"] = Field(
        "none", description="balanced: n / (k * count) per class; sqrt: its square root (milder)")


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
    strategy: str = Field("auto", description="Lightning distribution strategy: auto, ddp, fsdp, ...; or "
                                              "pipeline: the model cut into train.pipeline.stages processes")
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
    limit_train_batches: Optional[Union[int, float]] = Field(None,
        description="train on only this many batches (int) or fraction (float) per epoch: for quick checks")
    limit_val_batches: Optional[Union[int, float]] = Field(None,
        description="validate on only this many batches or this fraction")
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig,
                                     description="pipeline parallelism (fgvc pipeline plan)")

    @field_validator("precision", mode="before")
    @classmethod
    def _precision_text(cls, value):
        return str(value) if isinstance(value, int) else value  # YAML reads `precision: 32` as a number


class EvalConfig(Section):
    batch_size: int = Field(64, ge=1, description="images per batch when evaluating and predicting")
    split: Literal["val", "test"] = Field("test", description="split fgvc eval reports by default")
    top_k: int = Field(5, ge=1, description="k of the top-k accuracy reported beside top-1")
    tta: list[Literal["flip", "d4", "crops"]] = Field(
        default_factory=list, description="flip: + mirror; d4: the 8 flips and 90-degree rotations; crops: five crops")


class OutputConfig(Section):
    dir: Path = Field(Path("runs"), description="folder that run folders are written into")
    name: Optional[str] = Field(None, description="run folder name; null: the config file's name")


class ExecutorConfig(Section):
    """Where a group's runs (repeat, sweep, crossval, study, search) train; never what they compute.
    The CLI's --executor / --address / --cpus-per-trial / --gpus-per-trial and the environment
    (FGVC_EXECUTOR, FGVC_RAY_ADDRESS) override it."""

    name: Literal["local", "ray"] = Field("local", description="local: one run after another in this process; "
                                                              "ray: each run a task on a Ray cluster")
    address: Optional[str] = Field(None, description="a running Ray cluster (e.g. ray://head:10001 or auto); "
                                                     "null: start a local one")
    cpus_per_trial: float = Field(1.0, gt=0, description="CPUs per run; its torch thread count")
    gpus_per_trial: float = Field(0.0, ge=0, description="Ray: GPUs reserved per run (fractions share a GPU)")
    max_retries: int = Field(3, ge=0, description="times a run whose worker died is started again (it resumes)")


class ExperimentConfig(Section):
    """One experiment: what data, which model, how it is trained and evaluated, where it is written."""

    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    strategy: StrategyConfig = Field(default_factory=StrategyConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    gan: GanConfig = Field(default_factory=GanConfig)
    diffusion: DiffusionConfig = Field(default_factory=DiffusionConfig)
    stable_diffusion: StableDiffusionConfig = Field(default_factory=StableDiffusionConfig)
    seed: int = 42

    @model_validator(mode="after")
    def _warmup_fits(self) -> "ExperimentConfig":
        if self.schedule.warmup_epochs and self.schedule.warmup_epochs >= self.train.epochs:
            raise ValueError(
                f"schedule.warmup_epochs ({self.schedule.warmup_epochs}) must be less than train.epochs "
                f"({self.train.epochs}): the warmup would take the whole run; lower it or train longer"
            )
        return self

    @model_validator(mode="after")
    def _probe_options(self) -> "ExperimentConfig":
        s = self.strategy
        if s.name != "features" and (s.pooled_layers or s.probe_standardize):
            raise ValueError(f"strategy.probe_layers / probe_pooling / probe_standardize are options of "
                             f"strategy.name: features, not {s.name}; remove them or use the features strategy")
        if s.probe_standardize and s.probe_head != "logreg":
            raise ValueError("strategy.probe_standardize applies to probe_head: logreg only; remove it or use logreg")
        return self

    @model_validator(mode="after")
    def _device_decoding_loop(self) -> "ExperimentConfig":
        if self.data.jpeg_decode == "device" and self.strategy.name == "features":
            raise ValueError("data.jpeg_decode: device decodes in the fine-tuning loop; strategy.name: features "
                             "extracts its features with the workers' decoder; remove data.jpeg_decode")
        return self

    @model_validator(mode="after")
    def _logreg_loss(self) -> "ExperimentConfig":
        if self.strategy.name == "features" and self.strategy.probe_head == "logreg" and self.loss.name != "ce":
            raise ValueError(
                f"loss.name {self.loss.name!r} cannot be used with strategy.probe_head: logreg (scikit-learn's logistic "
                "regression has only its own cross-entropy; loss.class_weights still applies); use loss.name: ce, "
                "or probe_head: linear for a torch head that trains with any loss"
            )
        return self

    @model_validator(mode="after")
    def _pipeline_combinations(self) -> "ExperimentConfig":
        """What a pipeline run cannot combine with, each named with the setting that conflicts."""
        t = self.train
        if t.strategy != "pipeline":
            return self
        conflicts = {
            "data.mixup": self.data.mixup.enabled,
            "train.ema_decay": t.ema_decay is not None,
            "train.compile": t.compile,
            "train.accumulate_grad_batches > 1": t.accumulate_grad_batches > 1,
            "train.precision other than 32": t.precision != "32",
            f"strategy.name: {self.strategy.name}": self.strategy.name in ("features", "gradual", "lora"),
            "schedule.name: plateau": self.schedule.name == "plateau",
            "optim.l1 / optim.penalty_weight": bool(self.optim.l1 or self.optim.penalty_weight),
            "train.gradient_clip_val": t.gradient_clip_val is not None,
            "train.devices > 1 or train.num_nodes > 1 (DDP)": t.devices not in ("auto", 1) or t.num_nodes > 1,
            "data.jpeg_decode: device": self.data.jpeg_decode == "device",
        }
        named = [name for name, clash in conflicts.items() if clash]
        if named:
            raise ValueError(f"train.strategy: pipeline cannot be combined with {', '.join(named)}; "
                             "remove it or train with train.strategy: auto")
        p = t.pipeline
        if t.batch_size % p.microbatches:
            raise ValueError(f"train.batch_size ({t.batch_size}) must split into train.pipeline.microbatches "
                             f"({p.microbatches}) equal micro-batches")
        if isinstance(p.split, list) and len(p.split) != p.stages - 1:
            raise ValueError(f"train.pipeline.split lists {len(p.split)} cut points; {p.stages} stages need "
                             f"{p.stages - 1}")
        return self

    @property
    def run_dir(self) -> Path:
        """The run folder: output.dir / output.name."""
        return Path(self.output.dir).expanduser() / (self.output.name or "run")

    def to_yaml(self) -> str:
        """The resolved config as YAML (paths as strings, tuples as lists)."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)

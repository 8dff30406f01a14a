"""The data section: which data set, how it is split, decoded, cached, transformed and mixed."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from pydantic import Field, PrivateAttr, ValidationInfo, field_validator, model_validator

from fgvc.config.section import Section
from fgvc.registry import SOURCES

# Friendly names for augmentation policies; anything else is passed to timm as its own string
# (e.g. "rand-m9-mstd0.5-inc1", "augmix-m5-w4-d2", "original", "v0").
AUTO_AUGMENT_ALIASES = {
    "randaugment": "rand-m9-mstd0.5-inc1",
    "autoaugment": "original",
    "trivialaugment": "trivialaugment",
}


def disk_bytes(size: str) -> Optional[int]:
    """Bytes in a size written like 500MB, 2GB or 1.5TB (powers of 1000, as LitData reads them); None if not one."""
    import re

    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB)\s*", str(size), re.IGNORECASE)
    if not match:
        return None
    return int(float(match[1]) * 1000 ** ("B", "KB", "MB", "GB", "TB").index(match[2].upper()))


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
        description="training crop (timm): rrc = RandomResizedCrop (scale/ratio), rkrc = ResizeKeepRatio then "
                    "random crop, rkrr = ResizeKeepRatio then RandomResizedCrop")
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
    name: str = Field("image_folder", description="which data set adapter reads data.root")
    root: Optional[Path] = Field(None, description="data set folder; null for packaged data (elpv)")
    label: Optional[str] = Field(None, description="which label to learn, e.g. elpv: grade|type")
    crop_to_box: bool = Field(False, description="CUB-200: crop each image to the bird's box")
    test_root: Optional[Path] = Field(None, description="image_folder: folder of the test split")
    download: bool = Field(False, description="let torchvision download the data set (online users only)")
    official_val: bool = Field(False, description="use the data set's own val split where it has one")
    csv: CsvConfig = Field(default_factory=CsvConfig, description="layout of a CSV data set (data.name: kaggle_csv)")
    allow_duplicate_ids: bool = Field(False,
        description="kaggle_csv: train on ids listed twice with different labels, every row as listed "
                    "(false: such ids stop training before it starts; fgvc data verify lists them)")
    follow_links: bool = Field(False,
        description="image_folder: follow folder links that lead outside data.root (false: list no linked "
                    "folders); a link back into the tree (red/up -> ..) is never followed; data verify names them")
    skip_unreadable: bool = Field(False,
        description="leave out image files that cannot be read (listed in the run folder's unreadable_images.txt) "
                    "instead of stopping before training starts; every split is checked before any work")
    val_fraction: float = Field(0.1, ge=0, lt=1,
        description="fraction of the training split held out, stratified, for validation (0: none)")
    split_seed: int = Field(0, description="seed of the train/val split, kept apart from the training seed")
    test_split_seed: Optional[int] = Field(
        None, description="elpv: draw the 25% test split with this seed (split-to-split variance); null: the fixed split"
    )
    limit_per_class: Optional[int] = Field(None, gt=0, description="keep at most N training images per class "
                                                                   "(k-shot: 1, 2, 4, 8, 16)")
    limit_seed: Optional[int] = Field(
        None, description="seed of the limit_per_class draw; null: the run's seed, so `fgvc repeat` over seeds draws "
                          "other k-shot images each time (a data section alone: split_seed)")
    folds: Optional[int] = Field(None, ge=2, description="k-fold: split the training part into this many folds")
    fold: Optional[int] = Field(None, ge=0, description="k-fold: which fold is the val split (0-based)")
    num_workers: int = Field(2, ge=0, description="DataLoader worker processes that decode and augment images")
    uint8_batches: bool = Field(True,
        description="training: workers send uint8 images, normalised (and randomly erased) where the model runs")
    cache_dir: Path = Field(Path("~/.cache/fgvc"),
        description="where prepared data is kept: Fashion-MNIST, cached features, decoded images")
    cache_limit: Optional[str] = Field(None,
        description="shards: most local disk the shard cache may use, e.g. 2GB (null: LitData's default)")
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
    # the run's seed, set by the experiment config (never written: a repeat's member sets its own)
    _run_seed: Optional[int] = PrivateAttr(None)

    @property
    def limit_draw_seed(self) -> int:
        """The seed the limit_per_class images are drawn with: limit_seed, else the run's seed, else split_seed."""
        return next(s for s in (self.limit_seed, self._run_seed, self.split_seed) if s is not None)

    @field_validator("name")
    @classmethod
    def _registered(cls, name: str) -> str:
        return SOURCES.check(name)

    @field_validator("cache_limit")
    @classmethod
    def _cache_limit_size(cls, limit: Optional[str]) -> Optional[str]:
        if limit is not None and disk_bytes(limit) is None:
            raise ValueError(f"cache_limit {limit!r} is not a size; write it like 500MB or 2GB")
        return limit

    @field_validator("label")
    @classmethod
    def _label_known(cls, label: Optional[str], info: ValidationInfo) -> Optional[str]:
        name = info.data.get("name")
        choices = SOURCES.info(name).get("labels") if name else None
        if label is not None:
            if not choices:
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
        name = info.data.get("name")
        if seed is not None and name and not SOURCES.info(name).get("draws_test_split"):
            drawn = [n for n in SOURCES.names() if SOURCES.info(n).get("draws_test_split")]
            verb = "draws its" if len(drawn) == 1 else "draw their"
            raise ValueError(f"only {', '.join(drawn)} {verb} own test split; {name} has an official one")
        return seed

    @field_validator("fold")
    @classmethod
    def _fold_in_range(cls, fold: Optional[int], info: ValidationInfo) -> Optional[int]:
        folds = info.data.get("folds")
        if fold is not None and (folds is None or fold >= folds):
            raise ValueError(f"fold {fold} needs data.folds > {fold} (got folds={folds})")
        return fold

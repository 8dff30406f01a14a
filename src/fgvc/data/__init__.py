"""Data: data set adapters, splits, transforms, verification and previews."""

from __future__ import annotations

from fgvc.config import DataConfig
from fgvc.data.images import ImageDataset, ImageList, concat_images
from fgvc.data.sources import SourceParts, load_source
from fgvc.data.splits import DataSplits, limit_per_class, stratified_kfold, stratified_split
from fgvc.errors import DataError

__all__ = [
    "DataSplits",
    "ImageDataset",
    "ImageList",
    "SourceParts",
    "load_data",
    "load_source",
    "stratified_kfold",
    "stratified_split",
]


def load_data(cfg: DataConfig) -> DataSplits:
    """The data set's train / val / test (and unlabelled) splits for one experiment.

    The val split is the official one where ``data.official_val`` asks for it, otherwise a
    stratified ``data.val_fraction`` of the training part drawn with ``data.split_seed``.
    The official test split is passed through untouched. ``data.limit_per_class`` keeps k training
    images per class, drawn with ``data.limit_draw_seed`` (the run's seed unless ``data.limit_seed``).
    """
    parts = load_source(cfg)
    train, val = parts.train, parts.val
    if cfg.folds:
        # k-fold: the whole training part (with any official val) is split; fold k is the val split
        if val is not None:
            train, val = concat_images([train, val], f"{train.name}+val"), None
        fold_train, fold_val = stratified_kfold(train.labels, cfg.folds, cfg.split_seed,
                                                 train.class_names)[cfg.fold or 0]
        train, val = train.subset(fold_train, f"{train.name}:fold{cfg.fold}"), train.subset(fold_val, f"{train.name}:val{cfg.fold}")
    elif val is None and cfg.val_fraction > 0:
        kept, held = stratified_split(train.labels, cfg.val_fraction, cfg.split_seed, train.class_names)
        train, val = train.subset(kept, f"{train.name}:train"), train.subset(held, f"{train.name}:val")
    left_out = []
    if cfg.limit_per_class is not None:
        if cfg.skip_unreadable:  # k readable images per class: the unreadable ones leave before the draw
            from fgvc.data.readable import readable_splits

            readable, left_out = readable_splits(DataSplits(train, None, None), cfg.cache_dir, True, cfg.num_workers)
            train = readable.train
        train = train.subset(limit_per_class(train.labels, cfg.limit_per_class, cfg.limit_draw_seed))
    if cfg.synthetic is not None:
        train = add_synthetic(train, cfg)  # training split only: val and test stay real
    return DataSplits(train=train, val=val, test=parts.test, unlabelled=parts.unlabelled,
                      skipped_links=parts.skipped_links, left_out=left_out)


def add_synthetic(train: ImageList, cfg: DataConfig) -> ImageList:
    """The real training images plus ``ratio`` x (or ``count``) synthetic ones, drawn with split_seed."""
    import numpy as np

    from fgvc.data.sources.synthetic import load_synthetic, match_storage

    synthetic = load_synthetic(cfg.synthetic.path, train.class_names)
    wanted = cfg.synthetic.count if cfg.synthetic.count is not None else int(round((cfg.synthetic.ratio or 0) * len(train)))
    if wanted > len(synthetic):  # a silent cap would make ratio 0.5 and 1.0 the same experiment
        asked = f"count {cfg.synthetic.count}" if cfg.synthetic.count is not None else f"ratio {cfg.synthetic.ratio}"
        raise DataError(f"data.synthetic.{asked} asks for {wanted} synthetic images but {cfg.synthetic.path} holds "
                        f"{len(synthetic)}: sample more (--per-class) or ask for fewer")
    if wanted == 0:
        return train
    if train.boxes is not None:  # before the chosen images are decoded
        raise DataError("data.synthetic cannot be mixed with data.crop_to_box (generated images have no boxes)")
    chosen = np.sort(np.random.default_rng(cfg.split_seed).choice(len(synthetic), size=wanted, replace=False))
    synthetic = match_storage(synthetic.subset(chosen), train)
    real = ImageList(train.class_names, train.labels, train.paths, train.pixels, train.boxes,
                     {**train.meta, "synthetic": np.zeros(len(train), dtype=bool)}, train.name)
    return concat_images([real, synthetic], f"{train.name}+synthetic")

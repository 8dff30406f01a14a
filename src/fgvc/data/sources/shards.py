"""Shards written by ``fgvc data pack`` (LitData format), from a local folder or an http(s) URI.

The packed train / val / test splits are used as they are (the val split is never drawn again), so a
config that trains from shards sees the images its source config saw.
"""

from __future__ import annotations

from fgvc.config import DataConfig
from fgvc.data.sources.base import SourceParts
from fgvc.errors import DataError
from fgvc.registry import register_source


@register_source("shards")
def source_shards(cfg: DataConfig) -> SourceParts:
    """shards packed by fgvc data pack (a folder or an http(s) URI)"""
    try:
        from fgvc.data.shards.read import open_shards
    except ModuleNotFoundError as exc:
        raise DataError(f"shards need {exc.name}: pip install 'fgvc[shards]'") from None

    if cfg.root is None:
        raise DataError("shards: set data.root to the folder or URI that `fgvc data pack` wrote")
    for setting, value in (("data.folds", cfg.folds), ("data.synthetic", cfg.synthetic)):
        if value is not None:
            raise DataError(f"shards hold fixed splits: {setting} cannot be used with them; set it in the "
                            "source's config and pack that")
    if cfg.skip_unreadable:  # shards hold only what was readable when packed
        raise DataError("data.skip_unreadable does nothing for shards: packing checks every image; set it in the "
                        "source's config when you run `fgvc data pack`")
    from fgvc.config.data import disk_bytes

    limit = disk_bytes(cfg.cache_limit) if cfg.cache_limit is not None else None
    splits = open_shards(cfg.root, cfg.cache_dir, limit)
    return SourceParts(train=splits["train"], val=splits.get("val"), test=splits.get("test"),
                       unlabelled=splits.get("unlabelled"))

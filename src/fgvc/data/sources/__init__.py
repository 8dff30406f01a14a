"""One adapter per data set, each reading the data set's own on-disk layout (no downloading).

A data source is one module here with a function ``(DataConfig) -> SourceParts`` registered by
``@register_source(name)``; ``data.name`` accepts exactly the registered names. Importing this
package registers them all.
"""

from __future__ import annotations

from fgvc.config import DataConfig
from fgvc.data.sources import cub, elpv, fashion_mnist, image_folder, kaggle_csv, stanford_dogs, torchvision_sets  # noqa: F401 - registers
from fgvc.data.sources.base import SourceParts
from fgvc.registry import SOURCES

__all__ = ["SourceParts", "load_source"]


def load_source(cfg: DataConfig) -> SourceParts:
    """Read the data set named by ``cfg.name`` from ``cfg.root``."""
    return SOURCES.get(cfg.name)(cfg)

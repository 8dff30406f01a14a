"""One adapter per data set, each reading the data set's own on-disk layout (no downloading)."""

from __future__ import annotations

from fgvc.config import DataConfig
from fgvc.data.sources.base import SourceParts
from fgvc.data.sources.cub import load_cub200
from fgvc.data.sources.elpv import load_elpv
from fgvc.data.sources.fashion_mnist import load_fashion_mnist
from fgvc.data.sources.image_folder import load_image_folder
from fgvc.data.sources.kaggle_csv import load_kaggle_csv
from fgvc.data.sources.stanford_dogs import load_stanford_dogs
from fgvc.data.sources.torchvision_sets import (
    load_fgvc_aircraft,
    load_flowers102,
    load_oxford_pets,
    load_stanford_cars,
)

__all__ = ["SourceParts", "load_source"]


def load_source(cfg: DataConfig) -> SourceParts:
    """Read the data set named by ``cfg.name`` from ``cfg.root``."""
    loaders = {
        "elpv": lambda: load_elpv(cfg.root, cfg.label or "grade", cfg.test_split_seed),
        "cub200": lambda: load_cub200(cfg.root, crop_to_box=cfg.crop_to_box),
        "stanford_dogs": lambda: load_stanford_dogs(cfg.root),
        "flowers102": lambda: load_flowers102(cfg.root, download=cfg.download, official_val=cfg.official_val),
        "fgvc_aircraft": lambda: load_fgvc_aircraft(
            cfg.root, cfg.label or "variant", download=cfg.download, official_val=cfg.official_val
        ),
        "stanford_cars": lambda: load_stanford_cars(cfg.root),
        "oxford_pets": lambda: load_oxford_pets(cfg.root, download=cfg.download),
        "image_folder": lambda: load_image_folder(cfg.root, cfg.test_root),
        "kaggle_csv": lambda: load_kaggle_csv(cfg.root, cfg.csv),
        "fashion_mnist": lambda: load_fashion_mnist(cfg.root, cfg.cache_dir, download=cfg.download),
    }
    return loaders[cfg.name]()

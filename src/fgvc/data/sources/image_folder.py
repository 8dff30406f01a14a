"""Generic ImageFolder: root/class_x/img.jpg (optionally a test folder in the same layout)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
from torchvision.datasets.folder import find_classes, make_dataset

from fgvc.config import DataConfig
from fgvc.data.images import IMAGE_EXTENSIONS, ImageList
from fgvc.data.sources.base import SourceParts, require_root
from fgvc.errors import DataError
from fgvc.registry import register_source

HINT = "Expected one sub-folder per class holding its images: root/class_a/img1.jpg, root/class_b/img2.jpg."


def _scan(folder: Path, class_to_idx: dict[str, int], name: str, class_names: list[str]) -> ImageList:
    try:
        samples = make_dataset(str(folder), class_to_idx, extensions=IMAGE_EXTENSIONS)
    except FileNotFoundError as exc:
        raise DataError(f"{name}: {exc}. {HINT}") from None
    paths, labels = zip(*samples) if samples else ((), ())
    return ImageList(
        class_names=class_names, labels=np.asarray(labels, dtype=np.int64), paths=[Path(p) for p in paths], name=name
    )


def load_image_folder(root: Path, test_root: Optional[Path] = None) -> SourceParts:
    """Class names are the sub-folder names (sorted); a test folder must use the same classes."""
    root = require_root(root, "ImageFolder", HINT)
    try:
        classes, class_to_idx = find_classes(str(root))
    except FileNotFoundError as exc:
        raise DataError(f"ImageFolder {root}: {exc}. {HINT}") from None
    train = _scan(root, class_to_idx, "image_folder/train", classes)
    test = None
    if test_root is not None:
        test_root = require_root(test_root, "ImageFolder test split", HINT)
        test_classes, _ = find_classes(str(test_root))
        unknown = sorted(set(test_classes) - set(classes))
        if unknown:
            raise DataError(
                f"ImageFolder: test folder {test_root} has classes not in {root}: {unknown[:10]} "
                f"(train has {len(classes)} classes, test {len(test_classes)})"
            )
        test = _scan(test_root, {c: class_to_idx[c] for c in test_classes}, "image_folder/test", classes)
    return SourceParts(train=train, test=test)


@register_source("image_folder")
def source_image_folder(cfg: DataConfig) -> SourceParts:
    """one folder per class"""
    return load_image_folder(cfg.root, cfg.test_root)

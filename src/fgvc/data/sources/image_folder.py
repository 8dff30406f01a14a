"""Generic ImageFolder: root/class_x/img.jpg (optionally a test folder in the same layout).

Listed the way torchvision's ImageFolder lists it (same classes, same order), except for folder links:
none is followed unless ``data.follow_links``, and never one that leads back into the tree (a loop like
``red/up -> ..`` once grew 30 images to 990). Those skipped are kept for ``fgvc data verify``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np

from fgvc.config import DataConfig
from fgvc.data.images import ImageList, follows, walk_image_files
from fgvc.data.sources.base import SourceParts, require_root
from fgvc.errors import DataError
from fgvc.registry import register_source

HINT = "Expected one sub-folder per class holding its images: root/class_a/img1.jpg, root/class_b/img2.jpg."


def _classes(root: Path, walked: list[str], follow_links: bool, skipped: list[str]) -> list[str]:
    """The class folders directly in ``root``, sorted; linked ones only as :func:`follows` allows."""
    classes = []
    for entry in os.scandir(root):
        if not entry.is_dir():
            continue
        if entry.is_symlink() and not follows(entry.path, walked, follow_links):
            skipped.append(f"{entry.path} -> {os.readlink(entry.path)}")
            continue
        classes.append(entry.name)
    if not classes:
        raise DataError(f"ImageFolder {root}: no class folders. {HINT}")
    return sorted(classes)


def _scan(folder: Path, classes: list[str], class_names: list[str], name: str, walked: list[str],
          follow_links: bool, skipped: list[str]) -> ImageList:
    paths, labels, index = [], [], {c: i for i, c in enumerate(class_names)}
    for cls in classes:
        files = walk_image_files(folder / cls, walked, follow_links, skipped)
        if not files:
            raise DataError(f"{name}: no image files in {folder / cls}. {HINT}")
        paths += files
        labels += [index[cls]] * len(files)
    return ImageList(class_names=class_names, labels=np.asarray(labels, dtype=np.int64), paths=paths, name=name)


def load_image_folder(root: Path, test_root: Optional[Path] = None, follow_links: bool = False) -> SourceParts:
    """Class names are the sub-folder names (sorted); a test folder must use the same classes."""
    root = require_root(root, "ImageFolder", HINT)
    skipped: list[str] = []
    walked = [os.path.realpath(root)]
    classes = _classes(root, walked, follow_links, skipped)
    train = _scan(root, classes, classes, "image_folder/train", walked, follow_links, skipped)
    test = None
    if test_root is not None:
        test_root = require_root(test_root, "ImageFolder test split", HINT)
        test_walked = [os.path.realpath(test_root)]
        test_classes = _classes(test_root, test_walked, follow_links, skipped)
        unknown = sorted(set(test_classes) - set(classes))
        if unknown:
            raise DataError(
                f"ImageFolder: test folder {test_root} has classes not in {root}: {unknown[:10]} "
                f"(train has {len(classes)} classes, test {len(test_classes)})"
            )
        test = _scan(test_root, test_classes, classes, "image_folder/test", test_walked, follow_links, skipped)
    return SourceParts(train=train, test=test, skipped_links=skipped)


@register_source("image_folder")
def source_image_folder(cfg: DataConfig) -> SourceParts:
    """one folder per class"""
    return load_image_folder(cfg.root, cfg.test_root, cfg.follow_links)

"""CUB-200-2011 (Caltech-UCSD Birds) in its official layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fgvc.config import DataConfig
from fgvc.data.images import ImageList
from fgvc.data.sources.base import SourceParts, read_table, refuse_outside, require_files, require_root
from fgvc.errors import DataError
from fgvc.registry import register_source

FILES = ("images.txt", "image_class_labels.txt", "train_test_split.txt", "classes.txt", "bounding_boxes.txt", "images")
HINT = (
    "Download CUB_200_2011.tgz from https://www.vision.caltech.edu/datasets/cub_200_2011/ and extract it; "
    "data.root is the CUB_200_2011 folder (or the folder that contains it)."
)


def load_cub200(root: Path, crop_to_box: bool = False) -> SourceParts:
    """CUB-200-2011: 200 bird species, official train/test split, optional crop to the bird's box."""
    root = require_root(root, "CUB-200-2011", HINT)
    if (root / "CUB_200_2011").is_dir():
        root = root / "CUB_200_2011"
    require_files(root, FILES, "CUB-200-2011", HINT)

    def by_id(name: str, columns: int) -> dict[str, list[str]]:
        return {row[0]: row[1:] for row in read_table(root / name, columns)}

    images = by_id("images.txt", 2)
    labels = by_id("image_class_labels.txt", 2)
    is_train = by_id("train_test_split.txt", 2)
    boxes = by_id("bounding_boxes.txt", 5)
    classes = read_table(root / "classes.txt", 2)
    # "001.Black_footed_Albatross" -> "Black footed Albatross"
    class_names = [name.split(".", 1)[-1].replace("_", " ") for _, name in classes]

    ids = list(images)
    for table, name in ((labels, "image_class_labels.txt"), (is_train, "train_test_split.txt"), (boxes, "bounding_boxes.txt")):
        missing = [i for i in ids if i not in table]
        if missing:
            raise DataError(f"CUB-200-2011: {root / name} has no row for image ids {missing[:5]}")
    paths = [root / "images" / images[i][0] for i in ids]
    refuse_outside(root / "images", paths, lambda k: f"{root / 'images.txt'}: image {ids[k]} ({images[ids[k]][0]!r})")
    label_array = np.array([int(labels[i][0]) - 1 for i in ids])
    if label_array.min() < 0 or label_array.max() >= len(class_names):
        raise DataError(f"CUB-200-2011: class ids in image_class_labels.txt exceed the {len(class_names)} classes")
    whole = ImageList(
        class_names=class_names,
        labels=label_array,
        paths=paths,
        boxes=np.array([[float(v) for v in boxes[i]] for i in ids]) if crop_to_box else None,
        meta={"id": np.array(ids)},
        name="cub200",
    )
    train_flags = np.array([is_train[i][0] == "1" for i in ids])
    return SourceParts(
        train=whole.subset(np.flatnonzero(train_flags), "cub200/train"),
        test=whole.subset(np.flatnonzero(~train_flags), "cub200/test"),
    )


@register_source("cub200")
def source_cub200(cfg: DataConfig) -> SourceParts:
    """CUB-200-2011 birds"""
    return load_cub200(cfg.root, crop_to_box=cfg.crop_to_box)

"""Stanford Dogs in its official layout (Images/ and the lists' .mat files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.io import loadmat

from fgvc.config import DataConfig
from fgvc.data.images import ImageList
from fgvc.data.sources.base import SourceParts, refuse_outside, require_files, require_root
from fgvc.errors import DataError
from fgvc.registry import register_source

HINT = (
    "Download images.tar and lists.tar from http://vision.stanford.edu/aditya86/ImageNetDogs/ and extract "
    "them into data.root (Images/ and lists/train_list.mat, lists/test_list.mat)."
)


def _mat_strings(cells: np.ndarray) -> list[str]:
    """Flatten a MATLAB cell array of strings (N x 1 cells of 1-element arrays) into Python strings."""
    out = []
    for cell in np.asarray(cells, dtype=object).ravel():
        while isinstance(cell, np.ndarray):
            cell = cell.ravel()[0]
        out.append(str(cell))
    return out


def breed_name(folder: str) -> str:
    """'n02085620-Chihuahua' -> 'Chihuahua'; 'n02085782-Japanese_spaniel' -> 'Japanese spaniel'."""
    return folder.split("-", 1)[-1].replace("_", " ")


def load_stanford_dogs(root: Path) -> SourceParts:
    """Stanford Dogs: 120 breeds, official train/test lists."""
    root = require_root(root, "Stanford Dogs", HINT)
    lists = root / "lists" if (root / "lists").is_dir() else root
    require_files(root, ["Images"], "Stanford Dogs", HINT)
    require_files(lists, ["train_list.mat", "test_list.mat"], "Stanford Dogs", HINT)

    parts = {}
    for split in ("train", "test"):
        mat = loadmat(lists / f"{split}_list.mat")
        if "file_list" not in mat or "labels" not in mat:
            raise DataError(f"Stanford Dogs: {lists / f'{split}_list.mat'} lacks file_list/labels")
        parts[split] = (_mat_strings(mat["file_list"]), np.asarray(mat["labels"]).ravel().astype(int) - 1)

    # Class k is the synset folder of the files labelled k+1 (the lists number breeds 1..120).
    folders: dict[int, str] = {}
    for files, labels in parts.values():
        for file, label in zip(files, labels):
            folders.setdefault(int(label), file.split("/", 1)[0])
    if sorted(folders) != list(range(len(folders))):
        raise DataError(f"Stanford Dogs: labels in {lists} are not numbered 1..N")
    class_names = [breed_name(folders[k]) for k in range(len(folders))]

    def image_list(split: str) -> ImageList:
        files, labels = parts[split]
        paths = [root / "Images" / f for f in files]
        refuse_outside(root / "Images", paths, lambda k: f"{lists / f'{split}_list.mat'}: entry {k + 1} ({files[k]!r})")
        return ImageList(
            class_names=class_names,
            labels=labels,
            paths=paths,
            name=f"stanford_dogs/{split}",
        )

    return SourceParts(train=image_list("train"), test=image_list("test"))


@register_source("stanford_dogs")
def source_stanford_dogs(cfg: DataConfig) -> SourceParts:
    """Stanford Dogs"""
    return load_stanford_dogs(cfg.root)

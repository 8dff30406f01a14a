"""Stratified train/val splits and k-fold indices (scikit-learn), deterministic for a seed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Optional, Sequence

import numpy as np
from sklearn.model_selection import StratifiedKFold, train_test_split

from fgvc.data.images import ImageList
from fgvc.errors import DataError


def _too_small(labels: np.ndarray, needed: int, class_names: Optional[Sequence[str]]) -> Optional[str]:
    """The classes with fewer than ``needed`` images, by name ("class 'red' has 1 image"); None if none."""
    counts = np.bincount(labels)
    small = [(int(c), int(counts[c])) for c in np.flatnonzero((counts > 0) & (counts < needed))]
    if not small:
        return None

    def name(c: int) -> str:
        return repr(class_names[c]) if class_names is not None else f"#{c}"

    def images(n: int) -> str:
        return f"{n} image{'' if n == 1 else 's'}"

    if len(small) == 1:
        return f"class {name(small[0][0])} has {images(small[0][1])}, fewer than {needed}"
    shown = ", ".join(f"{name(c)} ({images(n)})" for c, n in small[:10])
    more = f" and {len(small) - 10} more" if len(small) > 10 else ""
    return f"{len(small)} classes have fewer than {needed} images: {shown}{more}"


def stratified_split(labels, fraction: float, seed: int,
                     class_names: Optional[Sequence[str]] = None) -> tuple[np.ndarray, np.ndarray]:
    """Indices (kept, held out) with ``fraction`` of each class held out; sorted, same seed same split.
    ``class_names`` name the classes in errors."""
    labels = np.asarray(labels)
    if fraction <= 0:
        return np.arange(len(labels)), np.array([], dtype=np.int64)
    small = _too_small(labels, 2, class_names)
    if small:
        raise DataError(
            f"cannot hold out a stratified {fraction:.0%} split: {small}; "
            "lower data.val_fraction to 0, or add images to the class"
        )
    try:
        kept, held = train_test_split(
            np.arange(len(labels)), test_size=fraction, stratify=labels, random_state=seed, shuffle=True
        )
    except ValueError as exc:
        classes = len(np.unique(labels))
        raise DataError(
            f"cannot hold out a stratified {fraction:.0%} split of {len(labels)} images in {classes} classes "
            f"({exc}); raise data.val_fraction so each class gets at least one held-out image"
        ) from None
    return np.sort(kept), np.sort(held)


def stratified_kfold(labels, folds: int, seed: int,
                     class_names: Optional[Sequence[str]] = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """``folds`` (train, val) index pairs; every image is in exactly one val fold. ``class_names`` name
    the classes in errors."""
    labels = np.asarray(labels)
    if folds < 2:
        raise DataError(f"k-fold needs at least 2 folds, got {folds}")
    small = _too_small(labels, folds, class_names)
    if small:
        raise DataError(f"{folds}-fold split: {small}; use fewer folds (data.folds)")
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return [(np.sort(t), np.sort(v)) for t, v in splitter.split(np.zeros(len(labels)), labels)]


def limit_per_class(labels, limit: int, seed: int) -> np.ndarray:
    """Sorted indices keeping at most ``limit`` images of each class (a seeded random choice)."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    keep = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        keep.append(members if len(members) <= limit else rng.choice(members, size=limit, replace=False))
    return np.sort(np.concatenate(keep)) if keep else np.array([], dtype=np.int64)


@dataclass
class DataSplits:
    """The splits an experiment uses. ``test`` is the official test split, never touched by splitting."""

    train: ImageList
    val: Optional[ImageList]
    test: Optional[ImageList]
    unlabelled: Optional[ImageList] = None
    skipped_links: list[str] = field(default_factory=list)  # folder links the source did not follow
    # unreadable files already left out (data.skip_unreadable before a k-shot draw), so the run lists them
    left_out: list = field(default_factory=list)

    @property
    def class_names(self) -> list[str]:
        return self.train.class_names

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def named(self) -> Iterator[tuple[str, ImageList]]:
        """(name, images) for each split that exists, in train, val, test, unlabelled order."""
        for name in ("train", "val", "test", "unlabelled"):
            images = getattr(self, name)
            if images is not None and len(images):
                yield name, images

"""Check a data set before training: counts, image sizes, unreadable files, duplicates across splits,
label conflicts (the same image under two labels), and notes on odd but readable files."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

import numpy as np

from fgvc.data.images import VERIFY_HINT, ImageList, image_notes
from fgvc.data.splits import DataSplits
from fgvc.errors import DataError


@dataclass
class Unreadable:
    split: str
    image: str
    error: str


@dataclass
class Note:
    """Something odd but readable about one image (high bit depth, CMYK, a PNG named .jpg, ...)."""

    split: str
    image: str
    note: str


@dataclass
class Duplicate:
    """Identical content found in more than one split (a leak), or several times within one."""

    digest: str
    images: list[tuple[str, str]]  # (split, image)
    labels: list[str] = field(default_factory=list)  # the label of each image ("" when unlabelled)

    @property
    def splits(self) -> list[str]:
        return sorted({split for split, _ in self.images})

    @property
    def conflicting(self) -> bool:
        """The same content under two or more different labels."""
        return len({label for label in self.labels if label}) > 1


@dataclass
class VerifyReport:
    class_names: list[str]
    counts: dict[str, list[int]]  # split -> images per class
    sizes: dict[str, dict[str, float]]  # split -> width/height statistics
    unreadable: list[Unreadable] = field(default_factory=list)
    leaks: list[Duplicate] = field(default_factory=list)  # same content in two or more splits
    repeats: list[Duplicate] = field(default_factory=list)  # same content twice within one split
    missing_classes: dict[str, list[str]] = field(default_factory=dict)  # split -> classes with no image
    totals: dict[str, int] = field(default_factory=dict)  # split -> images (labelled or not)
    conflicts: list[Duplicate] = field(default_factory=list)  # same content under different labels
    notes: list[Note] = field(default_factory=list)  # odd but readable files; never a failure
    skipped_links: list[str] = field(default_factory=list)  # folder links not followed ("link -> target")

    @property
    def ok(self) -> bool:
        return not (self.unreadable or self.leaks or self.conflicts)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["ok"] = self.ok
        return data


def _inspect(images: ImageList, index: int) -> tuple[str, Optional[tuple[int, int]], Optional[str], list[str]]:
    """(content digest, (width, height) or None, error or None, notes) for one image."""
    try:
        data = images.content_bytes(index)
    except DataError as exc:
        return "", None, error_reason(exc, images.key(index)), []
    digest = hashlib.blake2b(data, digest_size=16).hexdigest()
    try:
        image = images.image_from_bytes(index, data)
    except DataError as exc:
        return digest, None, error_reason(exc, images.key(index)), []
    notes = image_notes(data, images.key(index)) if images.paths is not None else []
    return digest, image.size, None, notes


def error_reason(exc: DataError, key: str) -> str:
    """An image's error without its path (listed beside it) and without the hint to run verify."""
    text = str(exc).split(f" {VERIFY_HINT}")[0].rstrip(".")
    for prefix in (f"cannot read image {key}: ", f"cannot open image file {key}: "):
        text = text[len(prefix):] if text.startswith(prefix) else text
    return text


def _size_stats(sizes: list[tuple[int, int]]) -> dict[str, float]:
    if not sizes:
        return {}
    array = np.asarray(sizes, dtype=float)
    stats = {}
    for axis, name in ((0, "width"), (1, "height")):
        column = array[:, axis]
        stats.update({
            f"{name}_min": float(column.min()),
            f"{name}_mean": float(column.mean()),
            f"{name}_max": float(column.max()),
        })
    stats["distinct_sizes"] = float(len({tuple(s) for s in sizes}))
    return stats


def verify_splits(
    splits: DataSplits, workers: int = 4, progress: Optional[Callable[[str, int], None]] = None
) -> VerifyReport:
    """Decode every image of every split once; report counts, sizes, unreadable files and duplicates.

    Unreadable files are listed, never dropped. ``progress(split, n)`` is called as images are done.
    """
    report = VerifyReport(class_names=list(splits.class_names), counts={}, sizes={},
                          skipped_links=list(splits.skipped_links))
    seen: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for split, images in splits.named():
            sizes = []
            results = pool.map(lambda i: _inspect(images, i), range(len(images)), chunksize=16)
            for index, (digest, size, error, notes) in enumerate(results):
                if error:
                    report.unreadable.append(Unreadable(split, images.key(index), error))
                report.notes += [Note(split, images.key(index), note) for note in notes]
                if digest:
                    label = int(images.labels[index])
                    seen[digest].append((split, images.key(index), splits.class_names[label] if label >= 0 else ""))
                if size:
                    sizes.append(size)
                if progress:
                    progress(split, 1)
            counts = images.class_counts()
            report.counts[split] = [int(c) for c in counts]
            report.totals[split] = len(images)
            report.sizes[split] = _size_stats(sizes)
            if images.is_labelled and split != "unlabelled":
                empty = [splits.class_names[c] for c in np.flatnonzero(counts == 0)]
                if empty:
                    report.missing_classes[split] = empty
    for digest, places in seen.items():
        if len(places) < 2:
            continue
        duplicate = Duplicate(digest, [(split, image) for split, image, _ in places], [label for *_, label in places])
        (report.leaks if len(duplicate.splits) > 1 else report.repeats).append(duplicate)
        if duplicate.conflicting:
            report.conflicts.append(duplicate)
    return report

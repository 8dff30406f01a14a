"""What every data set adapter returns, and the shared check for a data set's files."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

from fgvc.data.images import ImageList
from fgvc.errors import DataError


@dataclass
class SourceParts:
    """A data set as published: its training part, official test (and val) split, unlabelled images."""

    train: ImageList
    test: Optional[ImageList] = None
    val: Optional[ImageList] = None  # only where the data set ships an official validation split
    unlabelled: Optional[ImageList] = None
    skipped_links: list[str] = field(default_factory=list)  # folder links not followed ("path -> target")

    @property
    def class_names(self) -> list[str]:
        return self.train.class_names


def require_root(root: Optional[Path], title: str, hint: str) -> Path:
    """The data set's root folder, or a DataError saying how to get it."""
    if root is None:
        raise DataError(f"{title}: set data.root to the folder that holds it. {hint}")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"{title}: data folder not found: {root}. {hint}")
    return root


def require_files(root: Path, expected: Iterable[str], title: str, hint: str) -> None:
    """Fail with the list of expected files/folders that are missing below ``root``."""
    expected = list(expected)
    missing = [name for name in expected if not (root / name).exists()]
    if missing:
        raise DataError(
            f"{title}: {root} is missing {', '.join(missing)}.\n"
            f"  Expected layout under {root}: {', '.join(expected)}.\n  {hint}"
        )


def read_table(path: Path, columns: int) -> list[list[str]]:
    """Whitespace-separated text file into rows of at least ``columns`` fields (names the bad line)."""
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split(maxsplit=columns - 1)
        if len(fields) < columns:
            raise DataError(f"{path}:{number}: expected {columns} fields, got {line!r}")
        rows.append(fields)
    return rows


def pick_root(root: Path, inner: str) -> Path:
    """Accept either the folder that contains ``inner`` or ``inner`` itself; return the container."""
    return root.parent if root.name == inner and not (root / inner).exists() else root


def refuse_outside(root: Path, paths: Sequence[Path], entry: Callable[[int], str]) -> None:
    """A DataError for the first listed path that leaves ``root`` (an id like ``../../../etc/passwd``),
    named by ``entry(index)`` (the file and row that listed it).

    ``.`` and ``..`` are taken as written; links are not resolved, since a data set may keep its images
    on another disk through a link its owner made (folder links are image_folder's to refuse)."""
    top = os.path.abspath(root)
    for index, path in enumerate(paths):
        if os.path.commonpath([top, os.path.abspath(path)]) != top:  # abspath also folds the ..
            raise DataError(f"{entry(index)} leads outside the data folder {root}; "
                            "listed files must lie below it (no absolute paths, no ..)")

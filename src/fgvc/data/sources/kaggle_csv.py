"""Kaggle-style CSV labels (dog-breed-identification labels.csv, classify-leaves train.csv, cifar-10
trainLabels.csv): one row per training image, plus a folder of unlabelled test images."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from fgvc.config import CsvConfig, DataConfig
from fgvc.data.images import IMAGE_EXTENSIONS, UNLABELLED, ImageList, list_image_files
from fgvc.data.sources.base import SourceParts, refuse_outside, require_files, require_root
from fgvc.errors import DataError
from fgvc.registry import register_source

HINT = "Download the competition's files (kaggle competitions download -c NAME) and extract them into data.root."


def _resolve(image_dir: Path, ids: list[str], extension: str, csv_path: Path) -> list[Path]:
    if extension != "auto":
        return [image_dir / f"{i}{extension}" for i in ids]
    # One listing of the folder; ids may carry their own extension or folder ("images/0.jpg").
    by_stem = {p.stem: p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS}
    paths = []
    for image_id in ids:
        direct = image_dir / image_id
        if Path(image_id).suffix.lower() in IMAGE_EXTENSIONS:
            paths.append(direct)
        elif image_id in by_stem:
            paths.append(by_stem[image_id])
        else:
            paths.append(direct)  # reported as missing below
    return paths


def refuse_conflicting_ids(csv_path: Path, ids, label_names, lines) -> None:
    """A DataError naming the ids listed more than once with different labels: ``data verify`` lists them
    as label conflicts, and training on them would learn both labels for one image."""
    labels_of: dict[str, dict[str, int]] = {}
    for image_id, label, line in zip(ids, label_names, lines):
        labels_of.setdefault(image_id, {}).setdefault(label, line)
    conflicts = {i: labels for i, labels in labels_of.items() if len(labels) > 1}
    if conflicts:
        shown = "; ".join(f"{i!r} ({', '.join(f'{label} on line {line}' for label, line in labels.items())})"
                          for i, labels in list(conflicts.items())[:5])
        more = f" and {len(conflicts) - 5} more" if len(conflicts) > 5 else ""
        raise DataError(f"{csv_path}: {len(conflicts)} id{'s' if len(conflicts) > 1 else ''} listed with different "
                        f"labels: {shown}{more}; keep one label per id, or set data.allow_duplicate_ids: true to "
                        "train on every row as listed")


def load_kaggle_csv(root: Path, options: CsvConfig, allow_duplicate_ids: bool = False) -> SourceParts:
    """Labels from a CSV; class names are the sorted label values; test images are unlabelled.

    An id listed twice with different labels is an error unless ``allow_duplicate_ids``; an id that
    leads outside ``root`` always is."""
    root = require_root(root, "Kaggle CSV data set", HINT)
    require_files(root, [options.file, options.image_dir], "Kaggle CSV data set", HINT)
    csv_path = root / options.file
    with csv_path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        for column in (options.id_column, options.label_column):
            if column not in columns:
                raise DataError(
                    f"{csv_path}: no column {column!r} (columns: {columns}); "
                    "set data.csv.id_column / data.csv.label_column"
                )
        rows, lines = [], []
        for row in reader:
            rows.append(((row[options.id_column] or "").strip(), (row[options.label_column] or "").strip()))
            lines.append(reader.line_num)
    if not rows:
        raise DataError(f"{csv_path}: no rows")
    empty = [line for line, (image_id, label) in zip(lines, rows) if not image_id or not label]
    if empty:
        raise DataError(f"{csv_path}: empty id or label on lines {empty[:10]}")
    ids, label_names = zip(*rows)
    if not allow_duplicate_ids:
        refuse_conflicting_ids(csv_path, ids, label_names, lines)
    class_names = sorted(set(label_names))
    index = {name: i for i, name in enumerate(class_names)}
    image_dir = root / options.image_dir
    # Ids that already name a sub-path ("images/0.jpg") are relative to root, not image_dir.
    base = root if all("/" in i for i in ids) else image_dir
    paths = _resolve(base, list(ids), options.extension, csv_path)
    refuse_outside(root, paths, lambda k: f"{csv_path} line {lines[k]}: id {ids[k]!r}")
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise DataError(
            f"{csv_path}: {len(missing)} of {len(paths)} listed images are missing, e.g. {missing[:3]}; "
            "check data.csv.image_dir and data.csv.extension"
        )
    train = ImageList(
        class_names=class_names,
        labels=np.array([index[n] for n in label_names]),
        paths=paths,
        meta={"id": np.array(ids)},
        name="kaggle_csv/train",
    )
    unlabelled = None
    if options.test_dir and (root / options.test_dir).is_dir():
        files = list_image_files(root / options.test_dir)
        unlabelled = ImageList(
            class_names=class_names,
            labels=np.full(len(files), UNLABELLED),
            paths=files,
            meta={"id": np.array([p.stem for p in files])},
            name="kaggle_csv/unlabelled",
        )
    elif options.test_dir:
        raise DataError(f"Kaggle CSV data set: test folder {root / options.test_dir} not found; set data.csv.test_dir: null if there is none")
    return SourceParts(train=train, unlabelled=unlabelled)


@register_source("kaggle_csv")
def source_kaggle_csv(cfg: DataConfig) -> SourceParts:
    """a folder of images and a CSV of labels (Kaggle)"""
    return load_kaggle_csv(cfg.root, cfg.csv, cfg.allow_duplicate_ids)

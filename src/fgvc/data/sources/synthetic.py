"""Synthetic images written by fgvc's generators: DIR/<class>/*.png listed in DIR/manifest.csv."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

import numpy as np

from fgvc.data.images import ImageList
from fgvc.data.sources.base import refuse_outside
from fgvc.errors import DataError
from fgvc.groupfolder import SyntheticFolder

COLUMNS = SyntheticFolder.MANIFEST_COLUMNS


def load_synthetic(root: Path, class_names: Sequence[str]) -> ImageList:
    """The manifest's images with labels in the real data set's class order; unknown labels are errors."""
    root = Path(root).expanduser()
    manifest = SyntheticFolder(root).manifest_file
    if not manifest.is_file():
        raise DataError(f"synthetic data set {root}: no {manifest.name} (write one with fgvc's generators)")
    with manifest.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in ("file", "label") if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{manifest}: missing columns {missing}; expected {list(COLUMNS)}")
        rows, lines = [], []
        for row in reader:
            rows.append(row)
            lines.append(reader.line_num)
    index = {name: i for i, name in enumerate(class_names)}
    unknown = sorted({r["label"] for r in rows} - set(index))
    if unknown:
        raise DataError(f"{manifest}: labels {unknown[:10]} are not classes of the real data set "
                        f"({len(class_names)} classes, e.g. {list(class_names)[:5]})")
    paths = [root / (r["file"] or "") for r in rows]
    refuse_outside(root, paths, lambda k: f"{manifest} line {lines[k]}: file {rows[k]['file']!r}")
    absent = [str(p) for p in paths if not p.is_file()]
    if absent:
        raise DataError(f"{manifest}: {len(absent)} listed images are missing, e.g. {absent[:3]}")
    meta = {c: np.array([r.get(c, "") for r in rows]) for c in COLUMNS if c not in ("file", "label")}
    meta["synthetic"] = np.ones(len(rows), dtype=bool)
    return ImageList(list(class_names), np.array([index[r["label"]] for r in rows], dtype=np.int64),
                     paths=paths, meta=meta, name=f"synthetic:{root.name}")


def match_storage(synthetic: ImageList, real: ImageList) -> ImageList:
    """Synthetic images in the real list's storage: files stay files; for in-memory data sets
    (Fashion-MNIST) they are decoded into pixel arrays of the real images' shape."""
    if real.pixels is None:
        return synthetic
    shape = real.pixels.shape[1:]
    mode = "L" if len(shape) == 2 else "RGB"
    arrays = []
    for index in range(len(synthetic)):
        image = synthetic.load(index).convert(mode).resize((shape[1], shape[0]))
        arrays.append(np.asarray(image, dtype=np.uint8))
    return ImageList(synthetic.class_names, synthetic.labels, pixels=np.stack(arrays), meta=synthetic.meta,
                     name=synthetic.name)

"""ELPV: 2,624 electroluminescence images of solar cells, shipped by the pip package `elpv-dataset`.

Each 300x300 grey cell is graded by experts with a defect probability of 0, 1/3, 2/3 or 1 and typed
mono- or polycrystalline. The default label is the grade (4 imbalanced, subtly different classes);
``data.label: binary`` learns functional (probability < 0.5) against defective (>= 0.5), the
published binary task; ``data.label: type`` learns the cell type. The official data set has no
split, so a fixed stratified test split (25%, stratified by grade and type) is drawn with a constant
seed; ``data.test_split_seed`` draws another one, for split-to-split variance.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Optional

import numpy as np

from fgvc.config import DataConfig
from fgvc.data.images import ImageList
from fgvc.data.sources.base import SourceParts, read_table, refuse_outside, require_files, require_root
from fgvc.data.splits import stratified_split
from fgvc.errors import DataError
from fgvc.registry import register_source

GRADE_NAMES = ["functional", "possibly_defective", "likely_defective", "defective"]
TYPE_NAMES = ["mono", "poly"]
BINARY_NAMES = ["functional", "defective"]  # defect probability < 0.5 / >= 0.5
TEST_FRACTION = 0.25
TEST_SEED = 2624  # fixed: the ELPV test split never changes with the experiment's seeds
HINT = "Install it with `pip install elpv-dataset`, or point data.root at a folder holding labels.csv and images/."


def packaged_root() -> Path:
    """The data folder inside the installed `elpv-dataset` package."""
    try:
        return Path(str(resources.files("elpv_dataset"))) / "data"
    except ModuleNotFoundError:
        raise DataError(f"ELPV: the package elpv-dataset is not installed. {HINT}") from None


def _grade(value: str, where: str) -> int:
    try:
        probability = float(value)
    except ValueError:
        raise DataError(f"ELPV: {where}: defect probability {value!r} is not a number") from None
    grade = int(round(probability * 3))
    if abs(probability * 3 - grade) > 1e-6 or not 0 <= grade <= 3:
        raise DataError(f"ELPV: {where}: defect probability {value!r} is not one of 0, 1/3, 2/3, 1")
    return grade


def load_elpv(root: Optional[Path] = None, label: str = "grade", test_split_seed: Optional[int] = None) -> SourceParts:
    """ELPV with a stratified 75/25 train/test split (fixed unless ``test_split_seed``); class = defect
    grade, binary defective or not, or cell type."""
    root = require_root(root or packaged_root(), "ELPV", HINT)
    require_files(root, ["labels.csv", "images"], "ELPV", HINT)
    rows = read_table(root / "labels.csv", 3)
    grades = np.array([_grade(prob, f"labels.csv line {n}") for n, (_, prob, _t) in enumerate(rows, 1)])
    types = []
    for number, (_, _, cell_type) in enumerate(rows, 1):
        if cell_type.strip() not in TYPE_NAMES:
            raise DataError(f"ELPV: labels.csv line {number}: cell type {cell_type!r} is not mono or poly")
        types.append(TYPE_NAMES.index(cell_type.strip()))
    types = np.array(types)
    names, labels = {"grade": (GRADE_NAMES, grades), "binary": (BINARY_NAMES, (grades >= 2).astype(np.int64)),
                      "type": (TYPE_NAMES, types)}[label]
    paths = [root / path for path, _, _ in rows]
    refuse_outside(root, paths, lambda k: f"{root / 'labels.csv'} row {k + 1}: image {rows[k][0]!r}")
    whole = ImageList(
        class_names=names,
        labels=labels,
        paths=paths,
        meta={"grade": grades, "type": np.array(TYPE_NAMES)[types]},
        name="elpv",
    )
    # Stratify by grade x type, so both labels keep their proportions in train and test.
    seed = TEST_SEED if test_split_seed is None else test_split_seed
    strata = [f"{grade} {kind}" for grade in GRADE_NAMES for kind in TYPE_NAMES]
    train_idx, test_idx = stratified_split(grades * 2 + types, TEST_FRACTION, seed, strata)
    return SourceParts(train=whole.subset(train_idx, "elpv/train"), test=whole.subset(test_idx, "elpv/test"))


@register_source("elpv", labels=("grade", "binary", "type"), draws_test_split=True)
def source_elpv(cfg: DataConfig) -> SourceParts:
    """ELPV solar cells (the pip package elpv-dataset, or data.root)"""
    return load_elpv(cfg.root, cfg.label or "grade", cfg.test_split_seed)

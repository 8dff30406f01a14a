"""What a group of runs that ends in a comparison (sweep, study, search) checks before it trains
anything: seeds to pair, a split to compare on that the data set labels, a metric the runs report."""

from __future__ import annotations

from typing import Sequence

from fgvc.config import ExperimentConfig
from fgvc.data import DataSplits, load_data
from fgvc.errors import FgvcError

COMPARED_SPLITS = ("val", "test")


def check_comparison_plan(cfg: ExperimentConfig, seeds: Sequence[int], split: str, what: str) -> DataSplits:
    """One FgvcError before any run when the comparison at the end could not be made; else the data
    it looked at (for further checks on the same splits)."""
    if split not in COMPARED_SPLITS:
        raise FgvcError(f"{what} --split {split}: compare on {' or '.join(COMPARED_SPLITS)} (the runs fit train)")
    if len(seeds) < 2:
        raise FgvcError(f"{what} compares groups of runs paired by seed: --seeds gives {len(seeds)}; give at "
                        "least 2 (3 or more for a verdict worth having)")
    return require_labelled_split(cfg, split, what)


def require_labelled_split(cfg: ExperimentConfig, split: str, what: str,
                           splits: DataSplits | None = None) -> DataSplits:
    """One FgvcError when ``cfg``'s data set (``splits``, if loaded already) has no labelled ``split``
    to compare on; else the splits."""
    splits = splits or load_data(cfg.data)
    images = getattr(splits, split, None)
    if images is not None and len(images) and images.is_labelled:
        return splits
    state = "has no labels for its" if images is not None and len(images) else "has no"
    other = "val" if split == "test" else "test"
    raise FgvcError(f"{what} compares on the {split} split, and {cfg.data.name} here {state} {split} split; "
                    f"compare on {other} (--split {other})" + (", or give a labelled test split" if split == "test"
                                                                 else ", or set data.val_fraction > 0"))

"""Are a data set's image files readable? Checked before training starts, so a bad file stops a run
before any work (or, with ``data.skip_unreadable``, is left out) instead of at the first batch that
holds it.

What is checked, per file: it is not empty, PIL identifies it and its header parses (a declared size
over PIL's pixel limit fails here), ``verify()`` passes (for PNG: every chunk's checksum, so a
truncated or damaged PNG fails), and a JPEG holds its end-of-image marker near its end (a truncated
JPEG lacks it). A file that fails any of these is decoded in full, which confirms it and gives the
reason training would meet; a readable file is never refused. Not caught: a JPEG whose entropy data
is damaged in the middle with its end intact (``fgvc data verify`` decodes every file and finds it).
ELPV's 2,624 PNGs take ~0.3 s; a full decode would take ~2.8 s (one core).

Results are cached per file (path, size, modification time) under ``data.cache_dir/readable/``, so the
next run checks only new or changed files; ``fgvc data verify``'s full decode fills the same cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable, Optional

import numpy as np
from PIL import Image

from fgvc.data.images import decode_image, read_bytes
from fgvc.data.splits import DataSplits
from fgvc.data.verify import Unreadable, VerifyReport, error_reason
from fgvc.errors import DataError

JPEG_END = b"\xff\xd9"
JPEG_TAIL = 4096  # bytes searched for the end marker (some writers pad after it)
SHOWN = 3  # unreadable files named in the error; the count says how many more


def _suspect(path: Path) -> bool:
    """Whether the cheap checks (module docstring) find anything wrong with ``path``."""
    try:
        size = path.stat().st_size
        if size == 0:
            return True
        with Image.open(path) as image:
            kind = image.format
            image.verify()
        if kind == "JPEG":
            with path.open("rb") as handle:
                handle.seek(max(0, size - JPEG_TAIL))
                return JPEG_END not in handle.read()
        return False
    except Exception:  # noqa: BLE001 - whatever PIL raises, the full decode says why
        return True


def file_problem(path: Path) -> Optional[str]:
    """Why ``path`` cannot be read, as training would say it (without the path), or None when it can."""
    if not _suspect(path):
        return None
    name = str(path)
    try:
        decode_image(read_bytes(path), name)
    except DataError as exc:
        return error_reason(exc, name)
    return None


def _fingerprint(path: Path) -> Optional[str]:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return f"{os.path.abspath(path)}|{stat.st_size}|{stat.st_mtime_ns}"


class ReadableCache:
    """Per-file results (reason or None) keyed by path|size|mtime, one JSON per data set root."""

    def __init__(self, cache_dir: Path, paths: Iterable[Path]):
        paths = [os.path.abspath(p) for p in paths]
        root = os.path.commonpath(paths) if paths else ""
        digest = hashlib.blake2b(os.path.realpath(root).encode(), digest_size=10).hexdigest()
        self.file = Path(cache_dir).expanduser() / "readable" / f"{digest}.json"
        self.entries: dict[str, Optional[str]] = {}
        try:
            self.entries = dict(json.loads(self.file.read_text()).get("files", {}))
        except (OSError, ValueError, AttributeError):
            pass

    def save(self, found: dict[str, Optional[str]]) -> None:
        """Add ``found`` (replacing older entries of the same paths); a cache that cannot be written is
        skipped: the next run checks again."""
        fresh = {key.rsplit("|", 2)[0] for key in found}
        entries = {k: v for k, v in self.entries.items() if k.rsplit("|", 2)[0] not in fresh}
        entries.update(found)
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.file.parent, prefix=".readable-")
            with os.fdopen(fd, "w") as handle:
                json.dump({"files": entries}, handle)
            os.replace(tmp, self.file)
        except OSError:
            pass
        self.entries = entries


def remember_verified(splits: DataSplits, report: VerifyReport, cache_dir: Path) -> None:
    """Record what ``fgvc data verify``'s full decode found, file by file, in the cache (so training
    after a verify checks nothing again, and refuses what the decode found)."""
    bad = {item.image: item.error for item in report.unreadable}
    paths = {str(p) for _, images in splits.named() if images.paths is not None for p in images.paths}
    keys = {key: bad.get(path) for path in paths if (key := _fingerprint(Path(path)))}
    if keys:
        ReadableCache(cache_dir, paths).save(keys)


def unreadable_images(splits: DataSplits, cache_dir: Path, workers: int = 1) -> list[Unreadable]:
    """Every unreadable image file of every split (in-memory pixels are always readable)."""
    paths = sorted({str(p) for _, images in splits.named() if images.paths is not None for p in images.paths})
    if not paths:
        return []
    cache = ReadableCache(cache_dir, paths)
    keys = {path: _fingerprint(Path(path)) for path in paths}
    todo = [path for path, key in keys.items() if key is None or key not in cache.entries]
    reasons = {path: cache.entries[key] for path, key in keys.items() if path not in todo}
    if todo:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            found = dict(zip(todo, pool.map(lambda p: file_problem(Path(p)), todo)))
        reasons.update(found)
        cache.save({keys[p]: reason for p, reason in found.items() if keys[p] is not None})
    return [Unreadable(split, str(path), reasons[str(path)])
            for split, images in splits.named() if images.paths is not None
            for path in images.paths if reasons[str(path)]]


def readable_splits(splits: DataSplits, cache_dir: Path, skip: bool, workers: int = 1) -> tuple[DataSplits, list[Unreadable]]:
    """``splits`` when every image file is readable. Otherwise one error naming the first few (``skip``
    False), or the splits without them and the list of what was left out (``skip`` True), including
    what ``load_data`` left out before a k-shot draw."""
    bad = unreadable_images(splits, cache_dir, workers)
    if not bad:
        return splits, list(splits.left_out)
    if not skip:
        shown = " | ".join(f"{item.image}: {item.error}" for item in bad[:SHOWN])
        more = f" and {len(bad) - SHOWN} more" if len(bad) > SHOWN else ""
        raise DataError(f"{len(bad)} unreadable image{'s' if len(bad) > 1 else ''} ({count_by_split(bad)}): "
                        f"{shown}{more}. Replace or remove {'them' if len(bad) > 1 else 'it'}, or set "
                        "data.skip_unreadable: true to leave them out; `fgvc data verify CONFIG` lists every one")
    left_out = {(item.split, item.image) for item in bad}
    kept = {}
    for split, images in splits.named():
        keep = [i for i in range(len(images)) if (split, images.key(i)) not in left_out]
        kept[split] = images if len(keep) == len(images) else images.subset(np.asarray(keep, dtype=np.int64))
    if not len(kept.get("train", [])):
        raise DataError(f"every training image is unreadable ({count_by_split(bad)}); check the data set with "
                        "`fgvc data verify CONFIG`")
    left_out = splits.left_out + bad
    return DataSplits(train=kept["train"], val=kept.get("val", splits.val), test=kept.get("test", splits.test),
                      unlabelled=kept.get("unlabelled", splits.unlabelled), skipped_links=splits.skipped_links,
                      left_out=left_out), left_out


def as_trained(splits: DataSplits, data_cfg) -> DataSplits:
    """The splits a run with ``data_cfg`` was trained and evaluated on: without the unreadable files
    when it set data.skip_unreadable (so `fgvc eval` and `fgvc ensemble` see what training saw)."""
    if not data_cfg.skip_unreadable:
        return splits
    return readable_splits(splits, data_cfg.cache_dir, True, data_cfg.num_workers)[0]


def count_by_split(bad: list[Unreadable]) -> str:
    """``train 2, test 1``: how many unreadable images each split holds."""
    counts: dict[str, int] = {}
    for item in bad:
        counts[item.split] = counts.get(item.split, 0) + 1
    return ", ".join(f"{split} {count}" for split, count in counts.items())

"""What a packed data set holds: ``manifest.json`` (classes, counts, fingerprint, format) and, per split,
``SPLIT/table.npz`` (labels, ids and boxes, read before any image so samplers know the labels)."""

from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from fgvc.errors import DataError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
TABLE = "table.npz"
FORMATS = ("litdata", "webdataset")
SPLITS = ("train", "val", "test", "unlabelled")


@dataclass
class Manifest:
    """The top of a packed data set; ``splits`` maps each finished split to its image count."""

    format: str
    classes: list[str]
    fingerprint: str
    source: str
    splits: dict[str, int] = field(default_factory=dict)
    encoding: str = "source file bytes; in-memory pixels as lossless PNG"
    version: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def parse(cls, text: str, where: str) -> "Manifest":
        try:
            data = json.loads(text)
            manifest = cls(**{k: data[k] for k in ("format", "classes", "fingerprint", "source", "splits")},
                           encoding=data.get("encoding", ""), version=int(data["version"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{where} is not an fgvc shard manifest ({exc}); pack again with `fgvc data pack`") from None
        if manifest.version > FORMAT_VERSION:
            raise DataError(f"{where}: shard format version {manifest.version} is newer than this fgvc reads "
                            f"({FORMAT_VERSION}); upgrade fgvc")
        if manifest.format not in FORMATS:
            raise DataError(f"{where}: unknown shard format {manifest.format!r} (one of {', '.join(FORMATS)})")
        return manifest


def root_uri(root: Any) -> str:
    """data.root as a URI or local path (a Path turns ``http://`` into ``http:/``; undo that)."""
    text = str(root)
    fixed = re.sub(r"^([a-z][a-z0-9+.-]*):/(?!/)", r"\1://", text)
    return fixed.rstrip("/") if "://" in fixed else str(Path(text).expanduser())


def is_remote(uri: str) -> bool:
    return "://" in uri


def fingerprint(parts: dict) -> str:
    """One hash of every image's own fingerprint (path, size, mtime or pixels; box), label and split."""
    digest = hashlib.sha256()
    for split, images in parts.items():
        digest.update(f"{split}:{len(images)}:{images.class_names}\n".encode())
        for key, label in zip(images.fingerprints(), images.labels):
            digest.update(f"{key}|{int(label)}\n".encode())
    return digest.hexdigest()[:32]


def table_bytes(labels: np.ndarray, ids: list[str], boxes: Optional[np.ndarray]) -> bytes:
    arrays = {"labels": np.asarray(labels, dtype=np.int64), "ids": np.asarray(ids, dtype=str)}
    if boxes is not None:
        arrays["boxes"] = np.asarray(boxes, dtype=np.float32)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def read_table(data: bytes, where: str) -> dict[str, np.ndarray]:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as table:
            return {key: table[key] for key in table.files}
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"{where} is damaged ({exc}); pack the data set again") from None


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)

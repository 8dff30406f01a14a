"""Packed shards read back as a data source: a map-style view over LitData's ``StreamingDataset``.

Random access (``dataset[i]``) makes LitData read one item's bytes by range from its chunk, locally or
from the remote, with nothing but the index files written to the local cache: fgvc's own seeded sampler
(per-epoch permutation, DDP shares, exact mid-epoch resume), transforms and engines work on shards as on
any folder. Remote shards are read over http(s) (a web server's or a bucket's public URL) by
:class:`HttpDownloader`, registered with LitData here, since LitData 0.2 has no downloader for http.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import threading
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
from litdata.streaming.downloader import Downloader, register_downloader

from fgvc.data.images import ImageList, decode_image
from fgvc.data.shards.manifest import MANIFEST, TABLE, Manifest, is_remote, read_table, root_uri
from fgvc.errors import DataError

TIMEOUT_S = 20
INDEX = "index.json"  # LitData's own file name


def resume_hint() -> str:
    return "restart the server (or fix the network), then continue with `fgvc train --resume RUN_DIR`"


_connections = threading.local()  # one kept-alive connection per thread, process and server
RETRYABLE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError, http.client.CannotSendRequest)


def _connection(scheme: str, netloc: str, fresh: bool = False) -> http.client.HTTPConnection:
    pool = _connections.__dict__.setdefault("pool", {})
    key = (scheme, netloc, os.getpid())  # a forked DataLoader worker opens its own
    if fresh and key in pool:
        pool.pop(key).close()
    if key not in pool:
        kind = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
        pool[key] = kind(netloc, timeout=TIMEOUT_S)
    return pool[key]


def _http(url: str, byte_range: Optional[tuple[int, int]] = None) -> bytes:
    """GET ``url`` (the bytes ``begin..end-1`` only, with ``byte_range``) over a kept-alive connection;
    a DataError naming the URI."""
    parts = urllib.parse.urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    headers = {"Range": f"bytes={byte_range[0]}-{byte_range[1] - 1}"} if byte_range else {}
    for attempt in (0, 1):  # a kept-alive connection the server has closed since is opened again, once
        connection = _connection(parts.scheme, parts.netloc, fresh=attempt > 0)
        try:
            connection.request("GET", target, headers=headers)
            answer = connection.getresponse()
            data = answer.read()
            break
        except RETRYABLE as exc:
            if attempt:
                raise DataError(f"shard server does not answer: {url} ({exc}); {resume_hint()}") from None
        except (http.client.HTTPException, OSError) as exc:
            _connection(parts.scheme, parts.netloc, fresh=True)
            raise DataError(f"shard server does not answer: {url} ({exc}); {resume_hint()}") from None
    if answer.status == 416 and byte_range:
        raise DataError(f"shard {url} is truncated: it ends before byte {byte_range[1]}; pack it again")
    if answer.status >= 400:
        raise DataError(f"{url}: HTTP {answer.status} {answer.reason}")
    if byte_range and answer.status != 206:  # a server that ignores Range sends the whole file
        raise DataError(f"{url}: the server ignores byte ranges (HTTP {answer.status}); serve the shards "
                        "from one that answers Range requests (nginx, S3, any static file server)")
    return data


class HttpDownloader(Downloader):
    """LitData's downloader for http(s) URIs: whole files for indexes, byte ranges for items.

    A LitData chunk starts with its item count and offset table; reading an item asks for its two
    offsets, then its bytes. The table is fetched once per chunk and process, so an item costs one request."""

    def __getstate__(self) -> dict:
        return {k: v for k, v in super().__getstate__().items() if k != "_tables"}

    def download_file(self, remote_filepath: str, local_filepath: str) -> None:
        if os.path.exists(local_filepath):
            return
        os.makedirs(os.path.dirname(local_filepath) or ".", exist_ok=True)
        tmp = self._temp_download_path(local_filepath)
        with open(tmp, "wb") as handle:
            handle.write(_http(remote_filepath))
        self._publish_file(tmp, local_filepath)

    def _table(self, remote_filepath: str) -> bytes:
        tables = self.__dict__.setdefault("_tables", {})
        if remote_filepath not in tables:
            count = int(np.frombuffer(self._range(remote_filepath, 0, 4), np.uint32)[0])
            tables[remote_filepath] = self._range(remote_filepath, 0, 4 + 4 * (count + 1))
        return tables[remote_filepath]

    def _range(self, remote_filepath: str, offset: int, length: int) -> bytes:
        data = _http(remote_filepath, (offset, offset + length))
        if len(data) != length:
            raise DataError(f"shard {remote_filepath} is truncated: {len(data)} of {length} bytes at {offset}; "
                            "pack it again")
        return data

    def download_bytes(self, remote_filepath: str, offset: int, length: int, local_chunkpath: str) -> bytes:
        if length == 0:
            return b""
        table = self._table(remote_filepath)
        if offset + length <= len(table):
            return table[offset:offset + length]
        return self._range(remote_filepath, offset, length)


for _prefix in ("http://", "https://"):
    register_downloader(_prefix, HttpDownloader, overwrite=True)


def read_file(uri: str, name: str) -> bytes:
    """A small file (manifest, index, table) of the packed data set at ``uri``."""
    if is_remote(uri) and not uri.startswith(("http://", "https://")):
        raise DataError(f"data.root {uri}: shards are read from a folder or an http(s) URI (a public bucket "
                        "has one); or copy the shards to a local folder")
    if is_remote(uri):
        return _http(f"{uri}/{name}")
    path = Path(uri, name)
    if not path.is_file():
        raise DataError(f"{path} not found: data.root must be a folder written by `fgvc data pack`")
    return path.read_bytes()


@dataclass
class ShardSplit:
    """One split of a packed data set; opens LitData's dataset lazily, once per process."""

    uri: str
    split: str
    cache: Path
    fingerprint: str
    _dataset: Any = None

    def __getstate__(self) -> dict:  # DataLoader workers open their own
        return {**self.__dict__, "_dataset": None}

    def dataset(self):
        if self._dataset is None:
            from litdata import StreamingDataset
            from litdata.streaming.resolver import Dir

            source = f"{self.uri}/{self.split}"
            # batch_decode=0: one item decoded per read (LitData's "auto" decodes a window of 256 small items
            # around each one, which fgvc's random order then throws away: 570 against 30,000 reads/s)
            self._dataset = StreamingDataset(Dir(path=str(self.cache), url=source) if is_remote(self.uri) else source,
                                             batch_decode=0)
        return self._dataset

    def item(self, row: int) -> dict:
        try:
            return self.dataset()[row]
        except DataError:
            raise
        except (ValueError, OSError, IndexError, RuntimeError) as exc:
            raise DataError(f"cannot read image {row} of shards {self.uri}/{self.split} ({exc}); "
                            f"pack the data set again") from None


class ShardRows:
    """Where a ShardImages' images are: rows of one packed split. It stands in the ImageList's ``pixels``
    slot: like in-memory pixels, the images are no files of this machine (nothing stats or reopens them),
    and ``tobytes`` keys them for caches (the packed data set's fingerprint, split and rows)."""

    def __init__(self, store: ShardSplit, rows: np.ndarray):
        self.store, self.rows = store, np.asarray(rows, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index):
        if np.ndim(index) == 0:
            raise TypeError("packed images are read with ShardImages.load, not as pixels")
        return ShardRows(self.store, self.rows[np.asarray(index)])

    def tobytes(self) -> bytes:
        return f"{self.store.fingerprint}|{self.store.split}|".encode() + self.rows.tobytes()


class ShardImages(ImageList):
    """An ImageList read from shards: ``pixels`` is a :class:`ShardRows`, ``meta["id"]`` each image's id."""

    @property
    def rows(self) -> ShardRows:
        return self.pixels

    def key(self, index: int) -> str:
        return f"{self.rows.store.uri}/{self.rows.store.split}/{self.meta['id'][index]}"

    def content_bytes(self, index: int) -> bytes:
        return bytes(self.rows.store.item(int(self.rows.rows[index]))["image"])

    def image_from_bytes(self, index: int, data: bytes):
        image = decode_image(data, self.key(index))
        return image.crop(self.crop_box(index)) if self.boxes is not None else image

    def fingerprints(self) -> list[str]:
        keys = [f"{self.rows.store.fingerprint}|{self.rows.store.split}|{int(row)}" for row in self.rows.rows]
        if self.boxes is not None:
            keys = [k + "|" + ",".join(f"{float(v):g}" for v in box) for k, box in zip(keys, self.boxes)]
        return keys

    def subset(self, indices, name: Optional[str] = None) -> "ShardImages":
        plain = super().subset(indices, name)
        return ShardImages(plain.class_names, plain.labels, None, plain.pixels, plain.boxes, plain.meta, plain.name)


def _check_index(uri: str, split: str, index: dict, count: int) -> None:
    """The split's LitData index against the manifest and, locally, against the chunk files' sizes."""
    chunks = index.get("chunks", [])
    held = sum(int(chunk["chunk_size"]) for chunk in chunks)
    if held != count:
        raise DataError(f"{uri}/{MANIFEST} says {split} holds {count} images but {uri}/{split}/{INDEX} lists "
                        f"{held}: the manifest does not match the shards; pack the data set again")
    if is_remote(uri):
        return  # a truncated remote chunk is named when a read runs past its end
    for chunk in chunks:
        path = Path(uri, split, chunk["filename"])
        size = path.stat().st_size if path.is_file() else None
        if size != int(chunk["chunk_bytes"]):
            found = "missing" if size is None else f"{size} bytes"
            raise DataError(f"shard {path} is truncated or damaged: {found}, its index says "
                            f"{chunk['chunk_bytes']} bytes; pack the data set again")


def open_split(uri: str, split: str, manifest: Manifest, cache_root: Path) -> ShardImages:
    count = manifest.splits[split]
    index_bytes = read_file(uri, f"{split}/{INDEX}")
    try:
        index = json.loads(index_bytes)
    except ValueError:
        raise DataError(f"{uri}/{split}/{INDEX} is damaged; pack the data set again") from None
    _check_index(uri, split, index, count)
    table = read_table(read_file(uri, f"{split}/{TABLE}"), f"{uri}/{split}/{TABLE}")
    if len(table["labels"]) != count:
        raise DataError(f"{uri}/{MANIFEST} says {split} holds {count} images but {uri}/{split}/{TABLE} lists "
                        f"{len(table['labels'])}: the manifest does not match the shards; pack the data set again")
    cache = cache_root / split
    if is_remote(uri):  # LitData reads its index from the cache folder when it is there
        cache.mkdir(parents=True, exist_ok=True)
        (cache / INDEX).write_bytes(index_bytes)
    return ShardImages(
        class_names=manifest.classes,
        labels=table["labels"],
        pixels=ShardRows(ShardSplit(uri, split, cache, manifest.fingerprint), np.arange(count)),
        boxes=table.get("boxes"),
        meta={"id": table["ids"]},
        name=f"shards/{split}",
    )


def open_shards(root: Any, cache_dir: Path, cache_limit: Optional[int] = None) -> dict[str, ShardImages]:
    """Every split of the packed data set at ``root`` (a folder or URI), checked against its manifest.
    ``cache_limit``: bytes the local cache may hold (images are read by range: it holds LitData's indexes)."""
    uri = root_uri(root)
    manifest = Manifest.parse(read_file(uri, MANIFEST).decode(), f"{uri}/{MANIFEST}")
    if manifest.format != "litdata":
        raise DataError(f"{uri} holds {manifest.format} shards, the interchange format for timm and the Hugging "
                        "Face Hub; pack with --format litdata to train from it with fgvc")
    if "train" not in manifest.splits:
        raise DataError(f"{uri}: packing did not finish (no train split in {MANIFEST}); run `fgvc data pack` again")
    place = hashlib.sha256(uri.encode()).hexdigest()[:12]
    cache_root = Path(cache_dir).expanduser() / "shards" / f"{place}-{manifest.fingerprint}"
    splits = {split: open_split(uri, split, manifest, cache_root) for split in manifest.splits}
    if cache_limit is not None and cache_root.is_dir() and cache_bytes(cache_root) > cache_limit:
        raise DataError(f"the indexes of {uri} take {cache_bytes(cache_root):,} bytes in {cache_root}, over "
                        f"data.cache_limit ({cache_limit:,} bytes); raise the limit")
    return splits


def cache_bytes(cache_root: Path) -> int:
    """Bytes the shard cache holds on disk now."""
    return sum(f.stat().st_size for f in Path(cache_root).rglob("*") if f.is_file())

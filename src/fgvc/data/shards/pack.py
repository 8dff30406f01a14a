"""``fgvc data pack``: a config's splits written as shards, image bytes as the source holds them.

Resumable: ``manifest.json`` lists the finished splits; a LitData split is written to a hidden folder
with LitData's writer checkpoint after each chunk and renamed when whole; WebDataset shards are each
renamed into place when whole. A killed pack keeps every finished split and chunk (or shard), and a
re-run writes only the rest.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from PIL import Image

from fgvc.data.images import ImageList
from fgvc.data.shards.manifest import (
    FORMATS,
    MANIFEST,
    TABLE,
    Manifest,
    fingerprint,
    is_remote,
    root_uri,
    table_bytes,
    write_atomic,
)
from fgvc.data.splits import DataSplits
from fgvc.errors import DataError
from fgvc.runfolder import RunFolder

CHECKPOINTS = ".checkpoints"  # LitData's own name for its writer checkpoints
Progress = Callable[[str, int, int], None]  # (split, images done so far, images in the split)


def image_record(images: ImageList, index: int) -> tuple[bytes, str]:
    """The image's bytes and their file extension: a file's own bytes untouched; pixels as lossless PNG."""
    if images.paths is not None:
        suffix = Path(images.paths[index]).suffix.lower().lstrip(".")
        return images.content_bytes(index), {"jpeg": "jpg", "tif": "tiff"}.get(suffix, suffix or "img")
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(images.pixels[index])).save(buffer, "PNG")
    return buffer.getvalue(), "png"


def image_ids(images: ImageList, top: Optional[str]) -> list[str]:
    """Each image's id: its path below the source's common folder, or ``name#index`` for pixels."""
    if images.paths is None or top is None:
        return [images.key(i) for i in range(len(images))]
    return [os.path.relpath(path, top) for path in images.paths]


def _common_folder(splits: DataSplits) -> Optional[str]:
    """The folder the ids are relative to: the parent of the folder all image files share (so ids keep
    the data set's own top folder, e.g. ``train/blue/001.png``); None for in-memory pixels."""
    paths = [os.path.abspath(p) for _, images in splits.named() if images.paths is not None for p in images.paths]
    if not paths:
        return None
    shared = os.path.commonpath(paths) if len(paths) > 1 else os.path.dirname(paths[0])
    return os.path.dirname(shared)


def pack_splits(splits: DataSplits, out: Path, source: str, fmt: str = "litdata", chunk_bytes: str = "64MB",
                shard_images: int = 5000, progress: Optional[Progress] = None) -> Manifest:
    """Write every split of ``splits`` under ``out`` in ``fmt`` and return the manifest (resuming a killed pack)."""
    if fmt not in FORMATS:
        raise DataError(f"unknown shard format {fmt!r}; use one of {', '.join(FORMATS)}")
    if is_remote(root_uri(out)):
        raise DataError(f"--out {root_uri(out)}: fgvc packs into a local folder; copy it to the remote afterwards "
                        "(e.g. `aws s3 sync`, `rsync`, or a web server's folder)")
    out = Path(out).expanduser()
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".fgvc-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise DataError(f"--out {out}: cannot write there ({exc.strerror or exc}); choose a writable folder") from None
    named = dict(splits.named())
    manifest = Manifest(format=fmt, classes=list(splits.class_names), fingerprint=fingerprint(named), source=source)
    manifest_path = out / MANIFEST
    if manifest_path.is_file():
        earlier = Manifest.parse(manifest_path.read_text(), str(manifest_path))
        if earlier.format != manifest.format:
            raise DataError(f"{out} holds {earlier.format} shards; write {fmt} shards to another --out")
        if earlier.fingerprint != manifest.fingerprint:
            raise DataError(f"{out} holds {earlier.format} shards of another data set or split "
                            f"(fingerprint {earlier.fingerprint}, this config's is {manifest.fingerprint}); "
                            "choose another --out or delete that folder")
        manifest.splits = {k: v for k, v in earlier.splits.items() if (out / k).is_dir()}
    write_atomic(manifest_path, manifest.to_json().encode())
    top = _common_folder(splits)
    for split, images in named.items():
        if manifest.splits.get(split) == len(images):
            continue  # finished by an earlier run
        write = _write_litdata if fmt == "litdata" else _write_webdataset
        write(images, out, split, top, chunk_bytes, shard_images, progress)
        write_atomic(out / split / TABLE, table_bytes(images.labels, image_ids(images, top), images.boxes))
        manifest.splits[split] = len(images)
        write_atomic(manifest_path, manifest.to_json().encode())
    return manifest


def _report(progress: Optional[Progress], split: str, done: int, total: int) -> None:
    if progress is not None:
        progress(split, done, total)


def _write_litdata(images: ImageList, out: Path, split: str, top: Optional[str], chunk_bytes: str,
                   shard_images: int, progress: Optional[Progress]) -> None:
    """One LitData dataset per split (chunk-*.bin + index.json), the format ``litdata.optimize`` writes.

    Resumed as ``optimize(use_checkpoint=True)`` resumes: after each finished chunk the writer saves its
    checkpoint (the chunks so far), and a re-run starts the writer from it at the first image not in one."""
    from litdata.streaming.writer import BinaryWriter

    partial = out / f".partial-{split}"
    state = _litdata_checkpoint(partial)
    if state is None:
        shutil.rmtree(partial, ignore_errors=True)
    writer = BinaryWriter(str(partial), chunk_bytes=chunk_bytes)
    first = 0
    if state is not None:
        writer._chunks_info, writer._chunk_index = state["chunks"], state["next_chunk_index"]
        first = int(state["samples_written"])
    ids = image_ids(images, top)
    for index in range(first, len(images)):
        data, ext = image_record(images, index)
        # The box is always an array (NaN: none): a record of bytes, ints and strings alone makes LitData
        # 0.2 write an Arrow footer, which its by-range reads from a remote cannot read.
        box = images.boxes[index] if images.boxes is not None else np.full(4, np.nan)
        item = {"image": data, "label": int(images.labels[index]), "id": ids[index], "ext": ext,
                "box": np.asarray(box, dtype=np.float32)}
        if writer.add_item(index, item):  # a chunk was written: remember it
            writer.save_checkpoint(CHECKPOINTS)
            _report(progress, split, index, len(images))
        elif index % 256 == 255:
            _report(progress, split, index + 1, len(images))
    writer.done()
    writer.merge(num_workers=1)
    shutil.rmtree(partial / CHECKPOINTS, ignore_errors=True)
    _report(progress, split, len(images), len(images))
    shutil.rmtree(out / split, ignore_errors=True)
    partial.rename(out / split)


def _litdata_checkpoint(partial: Path) -> Optional[dict]:
    """The checkpoint of a killed split, when every chunk it lists is on disk whole; else None."""
    import json

    try:
        state = json.loads((partial / CHECKPOINTS / "checkpoint-0.json").read_text())
        whole = all((partial / c["filename"]).stat().st_size == int(c["chunk_bytes"]) for c in state["chunks"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return state if whole else None


def _write_webdataset(images: ImageList, out: Path, split: str, top: Optional[str], chunk_bytes: str,
                      shard_images: int, progress: Optional[Progress]) -> None:
    """WebDataset tars of ``shard_images`` images each; finished shards of a killed run are kept."""
    import json

    import webdataset as wds

    folder = out / split
    folder.mkdir(parents=True, exist_ok=True)
    ids = image_ids(images, top)
    for shard, start in enumerate(range(0, len(images), shard_images)):
        path = folder / f"shard-{shard:06d}.tar"
        stop = min(start + shard_images, len(images))
        if not path.is_file():
            tmp = path.with_name(path.name + ".tmp")
            with wds.TarWriter(str(tmp)) as sink:
                for index in range(start, stop):
                    data, ext = image_record(images, index)
                    info = {"id": ids[index], "label": int(images.labels[index])}
                    if images.boxes is not None:
                        info["box"] = [float(v) for v in images.boxes[index]]
                    sink.write({"__key__": f"{index:09d}", ext: data, "cls": int(images.labels[index]),
                                "json": json.dumps(info).encode()})
            tmp.replace(path)
        _report(progress, split, stop, len(images))


def pack_data(cfg, out: Path, fmt: str = "litdata", progress: Optional[Progress] = None, **options) -> Manifest:
    """Pack the splits fgvc trains on for data config ``cfg`` (the same val and test images) under ``out``."""
    from fgvc.data import load_data

    if cfg.name == "shards":
        raise DataError(f"data.root {cfg.root} is packed already; point `fgvc data pack` at the source's config")
    try:
        import litdata  # noqa: F401
        import webdataset  # noqa: F401
    except ModuleNotFoundError as exc:
        raise DataError(f"packing needs {exc.name}: pip install 'fgvc[shards]'") from None
    from fgvc.data.readable import readable_splits

    # an unreadable file is refused before anything is written, or left out and listed beside the shards
    splits, left_out = readable_splits(load_data(cfg), cfg.cache_dir, cfg.skip_unreadable, cfg.num_workers)
    manifest = pack_splits(splits, out, cfg.name, fmt, progress=progress, **options)
    if left_out:
        (Path(out) / RunFolder.UNREADABLE).write_text("split\timage\treason\n" + "".join(
            f"{item.split}\t{item.image}\t{item.error}\n" for item in left_out))
    return manifest

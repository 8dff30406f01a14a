"""Checkpoints that no fault destroys. A checkpoint is written to a temporary file beside it (the run's
own checkpoints folder, so the same file system), flushed and fsynced, then put in place with
``os.replace``: a kill, a full disk, a quota or a file-size limit leaves the previous checkpoint whole.
Lightning's own writer stages the file elsewhere (an fsspec transaction in /tmp) and moves it across
file systems, which is a copy: a full disk there left ``last.ckpt`` at 0 bytes."""

from __future__ import annotations

import contextlib
import errno
import io
import os
from pathlib import Path
from typing import Any, Optional

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from fgvc.errors import DiskFullError

# the errors that mean "no room for this file": a full disk, a quota, a file-size limit (RLIMIT_FSIZE)
NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def is_no_space(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in NO_SPACE


def save_checkpoint_file(checkpoint: dict[str, Any], path: Path | str) -> None:
    """``torch.save(checkpoint)`` to ``path`` through ``path.tmp`` in the same folder (flushed, fsynced,
    ``os.replace``d). No room for it: the partial file is removed, ``path`` is left as it was, and a
    :class:`DiskFullError` names the file."""
    path = Path(path)
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)  # serialised first: a failed write is then a plain OSError with its errno
    partial = path.with_name(f"{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(partial, "wb", buffering=0) as handle:
            data, written = buffer.getbuffer(), 0
            while written < len(data):
                written += handle.write(data[written:])
            os.fsync(handle.fileno())
        os.replace(partial, path)
        _fsync_folder(path.parent)  # the rename itself survives a power cut
    except BaseException as exc:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        if is_no_space(exc):
            epoch = checkpoint.get("epoch")
            what = f"{path}" + (f" after epoch {epoch}" if isinstance(epoch, int) else "")
            raise DiskFullError(f"could not write {what}: {exc.strerror} [{errno.errorcode[exc.errno]}]",
                                str(path)) from None
        raise


def _fsync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a folder be opened or synced
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, with every local checkpoint written by :func:`save_checkpoint_file`."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Optional[Any] = None) -> None:
        if storage_options is not None or "://" in str(path):  # not a local file: Lightning's own way
            return super().save_checkpoint(checkpoint, path, storage_options)
        save_checkpoint_file(checkpoint, path)

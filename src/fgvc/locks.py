"""Files two processes may touch at once: an exclusive lock that goes with its process, the lock file
beside a file or folder, and a write that a reader sees whole or not at all."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterator, Optional

LOCK_BESIDE = ".{name}.lock"  # in the parent folder, so deleting the folder or replacing the file keeps it


def lock_beside(path: Path | str) -> Path:
    """The lock file that guards ``path`` (a file or a folder), next to it."""
    path = Path(path)
    return path.parent / LOCK_BESIDE.format(name=path.name)


@contextlib.contextmanager
def file_lock(path: Path | str, on_wait: Callable[[Optional[int]], None] = lambda pid: None) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (made if missing), waiting for another process that holds it;
    ``on_wait(pid of the holder, if known)`` is called once when it has to wait. The lock goes with the
    process: a killed holder never leaves it stuck."""
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip()
            on_wait(int(holder) if holder.isdigit() else None)
            fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield


def write_atomically(path: Path | str, text: str) -> None:
    """Replace ``path`` with ``text`` in one step: a reader sees the old file or the new one, never half."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)

"""Keep freed tensor memory in the process, so a CPU training step does not fault its pages in again.

glibc serves every allocation above its mmap threshold (at most 32 MiB) with a fresh ``mmap`` and
hands it back with ``munmap`` when freed. A CPU step on large images allocates activations of that size
by the dozen, so every step the kernel zeroes and maps them page by page again: on Lite0 at 300 px, a
million and more page faults a step, half the step's CPU time spent in the kernel. With mmap off and the
trim threshold high, freed blocks stay in the heap and the next step reuses them (``python
bench/cpu_memory.py``: the ratio, in one process). The process then keeps its peak memory until it
exits, which a training process reaches anyway. Results do not change: only where the bytes live.

Process-wide and glibc-only (Linux); elsewhere :func:`keep_cpu_memory` does nothing. This module
imports nothing of fgvc, so every layer may use it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from typing import Optional

# mallopt(3) parameters, and glibc's defaults (what ``keep_cpu_memory(False)`` puts back)
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
DEFAULT_TRIM_THRESHOLD, DEFAULT_MMAP_MAX = 128 * 1024, 65536
KEPT_TRIM_THRESHOLD = 2**31 - 1  # the largest an int says: the heap's free top is kept up to 2 GiB


@functools.lru_cache(maxsize=1)
def _glibc() -> Optional[ctypes.CDLL]:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # present in glibc only (not musl, not macOS)
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    except (OSError, AttributeError):
        return None
    return libc


def keep_cpu_memory(keep: bool = True) -> bool:
    """Keep freed memory for reuse (``keep``), or give back what was kept and go on as glibc does by
    default; False where the C library is not glibc (nothing changed)."""
    libc = _glibc()
    if libc is None:
        return False
    mmap_max, trim = (0, KEPT_TRIM_THRESHOLD) if keep else (DEFAULT_MMAP_MAX, DEFAULT_TRIM_THRESHOLD)
    done = bool(libc.mallopt(M_MMAP_MAX, mmap_max)) and bool(libc.mallopt(M_TRIM_THRESHOLD, trim))
    if not keep:
        libc.malloc_trim(0)  # the free blocks kept so far, returned: the next step faults its pages in again
    return done

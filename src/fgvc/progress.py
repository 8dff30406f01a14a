"""Progress bars for long loops (predicting, explaining, extracting features): a rich bar on a
terminal, nothing at all when stderr is not one (CI logs, pipes, Ray workers). FGVC_PROGRESS=0 turns
them off, =1 on."""

from __future__ import annotations

import os
import sys
from typing import Iterable, Iterator, Optional, TypeVar

T = TypeVar("T")


def show_progress() -> bool:
    forced = os.environ.get("FGVC_PROGRESS")
    if forced in ("0", "1"):
        return forced == "1"
    return sys.stderr.isatty()


def track(items: Iterable[T], description: str, total: Optional[int] = None) -> Iterator[T]:
    """``items`` one by one, with a transient bar (count, elapsed, remaining) while they run. Inside
    another live display (a training bar) it stays silent rather than fight it."""
    if not show_progress():
        yield from items
        return
    from rich.console import Console
    from rich.errors import LiveError
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TimeRemainingColumn(), console=Console(stderr=True), transient=True)
    try:
        bar.start()
    except LiveError:
        yield from items
        return
    try:
        task = bar.add_task(description, total=total if total is not None else getattr(items, "__len__", lambda: None)())
        for item in items:
            yield item
            bar.advance(task)
    finally:
        bar.stop()

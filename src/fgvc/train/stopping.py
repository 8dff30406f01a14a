"""Stopping a run on Ctrl-C (SIGINT) or SIGTERM (what ``kill`` and schedulers send), promptly and cleanly.

The first signal asks the run to stop after the batch in flight (a checkpoint is never half written);
outside the training loop, or on a second signal, it stops at once. Either way the run ends with
:class:`fgvc.errors.RunStopped`, whose message the run turns into "where it stopped, what is on disk,
how to resume".
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator, Optional

import lightning as L

from fgvc.errors import RunStopped

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


class StopRequest:
    """The signal received (if any) while a run is going."""

    def __init__(self) -> None:
        self.signum: Optional[int] = None
        self.in_loop = False  # inside trainer.fit: stop at the next batch boundary
        self.epoch: Optional[int] = None  # the training epoch in progress (what a stop says)

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""

    def in_epoch(self) -> str:
        """``in epoch N`` while a training epoch is in progress, else empty."""
        return f"in epoch {self.epoch}" if self.epoch is not None else ""

    def error(self, where: str) -> RunStopped:
        """The stop, said with ``where`` (default: the epoch in progress, when one is)."""
        return RunStopped(f"stopped by {self.name} {where or self.in_epoch()}".rstrip(), EXIT_CODES.get(self.signum, 130))

    def handle(self, signum, frame) -> None:
        first = self.signum is None
        self.signum = signum
        if not (first and self.in_loop):
            raise self.error("")


@contextlib.contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """Route SIGINT and SIGTERM to a :class:`StopRequest` while the block runs (main thread only)."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in previous:
        signal.signal(s, request.handle)
    try:
        yield request
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt while the block runs (main thread only), also in a process started
    with SIGINT ignored or blocked by its parent (a shell's background job, a test runner's worker): what
    stop_on_signals does for a run, for a process that waits on others (the Ray executor's driver)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    mask = signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


class StopOnSignal(L.Callback):
    """Ends the fit at the first batch boundary after a signal (data-loader workers shut down with it)."""

    def __init__(self, request: StopRequest):
        self.request = request

    def on_fit_start(self, trainer, pl_module) -> None:
        self.request.in_loop = True

    def on_fit_end(self, trainer, pl_module) -> None:
        self.request.in_loop = False

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.request.epoch = trainer.current_epoch

    def _check(self, trainer, batch_idx: int) -> None:
        if self.request.signum is not None:
            self.request.in_loop = False
            raise self.request.error(f"in epoch {trainer.current_epoch}, batch {batch_idx}")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._check(trainer, batch_idx)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._check(trainer, batch_idx)

    def on_exception(self, trainer, pl_module, exception) -> None:
        self.request.in_loop = False

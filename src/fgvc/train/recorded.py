"""A run's outcome in its folder: ``run.json`` says running, finished, failed or stopped (with the reason),
and an error that ends a run says exactly what is on disk and how to go on."""

from __future__ import annotations

import contextlib
from typing import Iterator

from fgvc.errors import NonFiniteLossError, RunStopped
from fgvc.runfolder import RunFolder
from fgvc.train.stopping import StopRequest

NAN_ADVICE = "Try a lower optim.lr, train.gradient_clip_val, or train.precision: '32'."


def on_disk(folder: RunFolder, resume_command: str) -> str:
    """One sentence: the checkpoint a run can go on from (and its epoch), or that there is none."""
    last = folder.last_checkpoint
    if last.is_file():
        import torch

        try:
            epoch = int(torch.load(last, map_location="cpu", weights_only=False, mmap=True).get("epoch", -1))
            after = f" (after epoch {epoch})" if epoch >= 0 else ""
        except Exception:  # noqa: BLE001 - say what is there even when it cannot be read
            after = " (unreadable)"
        return f"On disk: {last}{after}; resume with: {resume_command}"
    return (f"On disk: no checkpoint ({folder.path} holds the config and history only; no epoch finished); "
            f"start again with: fgvc train {folder.config_file}")


@contextlib.contextmanager
def recorded(folder: RunFolder, stop_request: StopRequest, resume_command: str) -> Iterator[None]:
    """The folder's lock and run.json (:meth:`RunFolder.recording`), with the reason of a stop or a
    non-finite loss said as what is on disk and how to go on."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    with folder.recording():
        try:
            yield
        except (RunStopped, SIGTERMException, KeyboardInterrupt) as exc:
            if isinstance(exc, RunStopped):
                reason, code = str(exc), exc.exit_code
            elif isinstance(exc, SIGTERMException):
                reason, code = "stopped by SIGTERM", 143
            else:
                reason, code = "stopped by SIGINT", 130
            folder.set_status("stopped", reason)
            raise RunStopped(f"{reason}. {on_disk(folder, resume_command)}", code) from None
        except NonFiniteLossError as exc:
            folder.set_status("failed", str(exc))
            raise NonFiniteLossError(f"{exc}; the run stopped. {on_disk(folder, resume_command)}. {NAN_ADVICE}") from None

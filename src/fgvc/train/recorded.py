"""A run's outcome in its folder: ``run.json`` says running, finished, failed or stopped (with the reason),
and an error that ends a run says exactly what is on disk and how to go on."""

from __future__ import annotations

import contextlib
import errno
from typing import Iterator

from fgvc.errors import DiskFullError, NonFiniteLossError, RunStopped
from fgvc.runfolder import RunFolder
from fgvc.train.checkpoint_io import is_no_space
from fgvc.train.stopping import StopRequest

NAN_ADVICE = "Try a lower optim.lr, train.gradient_clip_val, or train.precision: '32'."


def on_disk(folder: RunFolder, resume_command: str) -> str:
    """One sentence: the checkpoint a run can go on from (and its epoch), or that there is none."""
    last = folder.last_checkpoint
    if last.is_file():
        from fgvc.trust import load_checkpoint_file

        try:
            epoch = int(load_checkpoint_file(last, mmap=True).get("epoch", -1))
            after = f" (after epoch {epoch})" if epoch >= 0 else ""
        except Exception:  # noqa: BLE001 - say what is there even when it cannot be read
            after = " (unreadable)"
        return f"On disk: {last}{after}; resume with: {resume_command}"
    return (f"On disk: no checkpoint ({folder.path} holds the config and history only; no epoch's checkpoint "
            "was written); "
            f"start again with: fgvc train {folder.config_file}")


@contextlib.contextmanager
def recorded(folder: RunFolder, stop_request: StopRequest, resume_command: str) -> Iterator[None]:
    """The folder's lock and run.json (:meth:`RunFolder.recording`), with the reason of a stop, a
    non-finite loss or a full disk said as what is on disk and how to go on."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    with folder.recording():
        try:
            yield
        except RuntimeError as exc:
            # a SIGTERM to the whole process group (a scheduler's cancel, `kill -- -PGID`) also kills the data
            # loader's workers, whose death can reach the run before its own stop does: a stop all the same
            if stop_request.signum is None or "DataLoader worker" not in str(exc):
                raise
            stopped = stop_request.error("")
            reason = f"{stopped} (its data-loader workers too)"
            folder.set_status("stopped", reason)
            raise RunStopped(f"{reason}. {on_disk(folder, resume_command)}", stopped.exit_code) from None
        except (RunStopped, SIGTERMException, KeyboardInterrupt) as exc:
            # Lightning's own SIGTERM check can end the fit before fgvc's does: said the same way
            where = f" {stop_request.in_epoch()}".rstrip()
            if isinstance(exc, RunStopped):
                reason, code = str(exc), exc.exit_code
            elif isinstance(exc, SIGTERMException):
                reason, code = f"stopped by SIGTERM{where}", 143
            else:
                reason, code = f"stopped by SIGINT{where}", 130
            folder.set_status("stopped", reason)
            raise RunStopped(f"{reason}. {on_disk(folder, resume_command)}", code) from None
        except NonFiniteLossError as exc:
            folder.set_status("failed", str(exc))
            raise NonFiniteLossError(f"{exc}; the run stopped. {on_disk(folder, resume_command)}. {NAN_ADVICE}") from None
        except (DiskFullError, OSError) as exc:
            if not isinstance(exc, DiskFullError) and not is_no_space(exc):
                raise
            what = str(exc) if isinstance(exc, DiskFullError) else (
                f"could not write {exc.filename or 'a file of the run'}: {exc.strerror} [{errno.errorcode[exc.errno]}]")
            folder.set_status("failed", what)  # room again: the partial file was removed
            raise DiskFullError(f"{what}; the run stopped and the checkpoint before it is intact. "
                                f"{on_disk(folder, resume_command + ' (after making room on the disk)')}",
                                exc.path if isinstance(exc, DiskFullError) else str(exc.filename or "")) from None

"""What fgvc runs when it reads a checkpoint someone else made: nothing.

A ``.ckpt`` is a pickle, and a pickle can call any function while it loads (``os.system`` included).
So every checkpoint loads with ``torch.load(weights_only=True)``: tensors, numbers, strings, plain
containers, which is all that fgvc's own checkpoints hold (Lightning's, the pipeline engine's with its
optimizer states and cut points, a generator's; a type they come to need is allowed by name with
``torch.serialization.add_safe_globals``, never by loading everything). A file that needs more
is refused in one line naming it, unless the user trusts checkpoints: ``fgvc --trust-checkpoint`` or
``FGVC_TRUST_CHECKPOINTS=1``. The switch is an environment variable so that every process of a run
(Ray workers, the pipeline's stage processes, DDP ranks) makes the same choice. This module imports
nothing of fgvc but the errors, so every layer may use it. :func:`read_checkpoint` is how every layer
reads a Lightning checkpoint: weights only, and one clear error naming a missing, empty, truncated or
foreign file.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path
from typing import Any

from fgvc.errors import CheckpointError

TRUST_ENV = "FGVC_TRUST_CHECKPOINTS"
TRUST_FLAG = "--trust-checkpoint"


def trust_checkpoints(trust: bool = True) -> None:
    """Load checkpoints with full pickle from now on (this process and those it starts), or stop doing so."""
    if trust:
        os.environ[TRUST_ENV] = "1"
    else:
        os.environ.pop(TRUST_ENV, None)


def checkpoints_trusted() -> bool:
    """Whether the user said checkpoints are theirs (``--trust-checkpoint`` or FGVC_TRUST_CHECKPOINTS=1)."""
    return os.environ.get(TRUST_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def loads_weights_only() -> bool:
    """The ``weights_only`` argument for torch.load and Lightning's ``Trainer.fit``."""
    return not checkpoints_trusted()


def load_checkpoint_file(path: Path | str, mmap: bool = False) -> Any:
    """``torch.load(path)`` on the CPU, weights only unless trusted. A file that holds more than weights
    raises :class:`CheckpointError` naming it; any other failure (truncated, not a checkpoint) is the
    caller's to word."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=loads_weights_only(), mmap=mmap)
    except pickle.UnpicklingError as exc:
        if not loads_weights_only() or "weights only load failed" not in str(exc).lower():
            raise
        raise CheckpointError(
            f"checkpoint {path} holds Python objects beyond tensors (loading it could run code: "
            f"{_what_it_needs(path, str(exc))}); fgvc refuses it. If you made it yourself, pass "
            f"{TRUST_FLAG} (fgvc {TRUST_FLAG} COMMAND ...) or set {TRUST_ENV}=1") from None


def _what_it_needs(path: Path | str, message: str) -> str:
    """The globals the pickle would call (read without loading it), else the unpickler's own reason."""
    from torch.serialization import get_unsafe_globals_in_checkpoint

    try:
        names = get_unsafe_globals_in_checkpoint(path)
    except Exception:  # noqa: BLE001 - an old (non-zip) pickle: the unpickler's message says enough
        names = []
    if names:
        return "GLOBAL " + ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    found = re.search(r"GLOBAL [\w.]+|Unsupported operand \d+", message)
    return found.group(0) if found else "an unsupported pickle instruction"


def read_checkpoint(path: Path | str, what_to_do: str = "", mmap: bool = False) -> dict[str, Any]:
    """A Lightning checkpoint as a dict (weights only unless trusted, :func:`load_checkpoint_file`), or one
    clear error naming the file, what is wrong and what to do."""
    path = Path(path)
    advice = f"; {what_to_do}" if what_to_do else ""
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}{advice}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes; the process was probably killed while "
                              f"writing it){advice}")
    try:
        checkpoint = load_checkpoint_file(path, mmap=mmap)
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001 - a truncated zip, a pickle error, EOF: all mean "unreadable"
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"checkpoint {path} is unreadable (truncated or not a checkpoint: {reason}){advice}") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path} is not a Lightning checkpoint (no state_dict){advice}")
    return checkpoint


def checkpoint_start_epoch(checkpoint: dict[str, Any]) -> int:
    """The epoch a run resumed from ``checkpoint`` starts with (Lightning's processed-epoch count)."""
    try:
        return int(checkpoint["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"])
    except (KeyError, TypeError):
        return int(checkpoint.get("epoch", -1)) + 1

"""Where a run's numbers came from: fgvc's version and git commit, when, on what hardware. Recorded in
metrics.json when the run finishes (on the machine that trained it) and shown at the top of its report."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional


def git_commit(path: Path) -> Optional[str]:
    """The short commit of the git checkout holding ``path``, with '+' when it has uncommitted changes."""
    try:
        commit = subprocess.run(["git", "-C", str(path), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=5)
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(path), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return commit.stdout.strip() + ("+" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def hardware() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    text = f"{os.cpu_count()} CPU cores ({cpu}), torch {torch.__version__}"
    if torch.cuda.is_available():
        text += f", {torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    return text


def provenance() -> dict[str, Any]:
    import fgvc

    return {"fgvc": fgvc.__version__, "git_commit": git_commit(Path(fgvc.__file__).parent),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "hardware": hardware(),
            "python": platform.python_version()}

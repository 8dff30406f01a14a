"""The JSON records a report is made from (study.json, sweep.json, search.json, ensemble.json, a group's
summary.json), read with one clear line naming the file when one is unreadable or damaged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fgvc.errors import ReportError

REWRITE = "run the command that wrote it again to rewrite it (finished runs are reused)"


def read_record(path: Path | str, what_to_do: str = REWRITE) -> Any:
    """``path``'s JSON, or :class:`ReportError` naming the file, what is wrong and ``what_to_do``."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except OSError as exc:
        raise ReportError(f"cannot read {path}: {exc.strerror or exc}; {what_to_do}") from None
    except json.JSONDecodeError as exc:  # cut short by a full disk, or edited by hand
        raise ReportError(f"{path} is damaged (not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}); "
                          f"{what_to_do}") from None
    except UnicodeDecodeError:
        raise ReportError(f"{path} is damaged (not text); {what_to_do}") from None

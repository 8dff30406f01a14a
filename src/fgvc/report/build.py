"""``fgvc report``: (re)build the report of whatever folder it is given: a run, a group or a search."""

from __future__ import annotations

from pathlib import Path

from fgvc.errors import FgvcError
from fgvc.groupfolder import GroupFolder
from fgvc.report.html import draw_run_plots, group_report, run_report
from fgvc.report.search_report import search_report
from fgvc.runfolder import RunFolder


def build_report(path: Path) -> Path:
    """``fgvc report``: a run folder (metrics.json), a group folder (summary.json) or a search folder
    (search.json)."""
    path = Path(path)
    if not path.is_dir():
        raise FgvcError(f"not found: {path}")
    if GroupFolder(path).summary_file.is_file():
        return group_report(path, rebuild_members=True)
    if GroupFolder(path).search_file.is_file():
        return search_report(path)
    folder = RunFolder(path)
    if folder.metrics_file.is_file():
        draw_run_plots(folder.path, folder.metrics(), folder.class_names() or [])  # runs of older versions too
        return run_report(path)
    raise FgvcError(f"{path} holds neither {RunFolder.METRICS} (a run), {GroupFolder.SUMMARY} (a group) nor "
                    f"{GroupFolder.SEARCH} (a search)")

"""SEARCH/report.html from search.json: the confirmed verdict, the best trial, every trial's curve
(pruned ones dashed, ending where ASHA stopped them), the trials table and Optuna's parameter
importances."""

from __future__ import annotations

import html
import io
import json
from pathlib import Path

from fgvc.groupfolder import GroupFolder
from fgvc.report.html import _fmt, _img, _page, _table
from fgvc.runfolder import RunFolder


def _curves_png(record: dict) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for trial in record["trials"]:
        curve = trial.get("curve") or []
        if not curve:
            continue
        style = {"completed": "-", "pruned": "--"}.get(trial["status"], ":")
        ax.plot([p["epoch"] for p in curve], [p["value"] for p in curve], style, marker=".",
                alpha=0.9 if trial["status"] == "completed" else 0.5)
    ax.set_xlabel("epoch")
    ax.set_ylabel(record["metric"])
    ax.set_title("trials (solid: completed, dashed: pruned by ASHA)")
    ax.grid(alpha=0.3)
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def search_report(search_dir: Path) -> Path:
    search_dir = Path(search_dir)
    folder = GroupFolder(search_dir)
    record = json.loads(folder.search_file.read_text())
    parts = [f"<p class='muted'>{html.escape(str(search_dir))}: {len(record['trials'])} trials of at most "
             f"{record['budget_epochs']} epochs, chosen by {html.escape(record['metric'])} ({record['mode']}); "
             "the test split is used only by the confirmation</p>"]
    confirmation = record.get("confirmation")
    if confirmation:
        start, best = (f"{group.relative_to(search_dir).as_posix()}/{RunFolder.REPORT}"
                       for group in (folder.confirm_start, folder.confirm_best))
        parts.append(f"<h2>Verdict</h2><p><b>{html.escape(confirmation['verdict'])}</b></p>"
                     f"<p class='muted'>{html.escape(confirmation['detail'])} "
                     f"(<a href='{start}'>start</a>, <a href='{best}'>best</a>)</p>")
    best = record.get("best")
    if best:
        parts.append("<h2>Best trial</h2>" + _table(["key", "value"], [[k, v] for k, v in best["params"].items()])
                     + f"<p class='muted'>written as {folder.BEST_CONFIG}</p>")
    parts.append("<h2>Space</h2>" + _table(["key", "distribution"], [[k, v] for k, v in record["space"].items()]))
    parts.append("<h2>Curves</h2>" + _img(_curves_png(record), "validation metric per epoch of every trial"))
    keys = list(record["space"])
    rows = []
    for trial in sorted(record["trials"], key=lambda t: (t["status"] != "completed", -(t.get("value") or 0))):
        when = f"after epoch {trial['epochs']}" if trial["status"] == "pruned" else ""
        rows.append([trial["trial"], trial["status"], when, trial.get("value", ""),
                     *[trial["params"].get(k, "") for k in keys]])
    parts.append("<h2>Trials</h2>" + _table(["trial", "status", "pruned", record["metric"], *keys], rows))
    if record.get("importances"):
        parts.append("<h2>Parameter importances (Optuna, fANOVA)</h2>"
                     + _table(["key", "importance"], [[k, _fmt(v)] for k, v in record["importances"].items()]))
    out = folder.report_file
    out.write_text(_page(f"fgvc search: {search_dir.name}", "".join(parts)))
    return out

"""Self-contained HTML reports (images inlined as data URIs; opens in a browser with no server).

Run report: config, metrics, learning curves, confusion matrix, per-class accuracy (worst first),
most confused pairs, misclassified test images. Group report: every metric's mean, std and CI over
the members, and a table of the members with links to their own reports.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any, Optional

from fgvc.groupfolder import GroupFolder
from fgvc.report.plots import top_confusions
from fgvc.runfolder import RunFolder

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#222}
h1{font-size:1.6rem} h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5rem 0} td,th{border:1px solid #ddd;padding:.25rem .6rem;text-align:right}
th{background:#f4f4f4} td:first-child,th:first-child{text-align:left}
pre{background:#f7f7f7;padding:.8rem;overflow:auto;font-size:.8rem;max-height:30rem}
img{max-width:100%} .muted{color:#777} .warning{color:#a05a00}
"""


def _img(data: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'


def _img_file(path: Path, alt: str) -> str:
    return _img(path.read_bytes(), alt) if path.is_file() else f'<p class="muted">({html.escape(path.name)} missing)</p>'


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>")


def _wrap(draw, text: str, width: int) -> list[str]:
    """``text`` in lines no wider than ``width`` pixels, broken at spaces or underscores where possible."""
    lines, current = [], ""
    for char in text:
        if current and draw.textlength(current + char) > width:
            cut = max(current.rfind(" "), current.rfind("_"))
            if cut > 0:
                lines.append(current[:cut + 1].rstrip())
                current = current[cut + 1:]
            else:
                lines.append(current)
                current = ""
        current += char
    return lines + [current] if current else lines


def _misclassified_grid(run_dir: Path, count: int = 16, tile: int = 128) -> Optional[bytes]:
    """A PNG of up to ``count`` wrongly classified test images (most confident first), each captioned
    true -> predicted (confidence). Drawn with PIL: a report per run must stay cheap."""
    from PIL import Image, ImageDraw

    folder = RunFolder(run_dir)
    if not folder.predictions_file("test").is_file():
        return None
    wrong = [r for r in folder.predictions("test") if not r.right]
    if not wrong:
        return None
    wrong = sorted(wrong, key=lambda r: -r.confidence)[:count]
    from fgvc.config import load_config
    from fgvc.data import load_data

    test = load_data(load_config(folder.config_file).data).test
    index = {test.key(i): i for i in range(len(test))}
    columns = min(8, len(wrong))
    rows = -(-len(wrong) // columns)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    captions = [(_wrap(measure, row.target_name, tile - 6),
                 _wrap(measure, f"-> {row.predicted_name} {row.confidence:.2f}", tile - 6)) for row in wrong]
    line = 12
    caption = line * max(len(a) + len(b) for a, b in captions) + 4  # whole names, wrapped: never cut
    sheet = Image.new("RGB", (columns * tile, rows * (tile + caption)), "white")
    draw = ImageDraw.Draw(sheet)
    for n, (row, (true_lines, predicted_lines)) in enumerate(zip(wrong, captions)):
        x, y = (n % columns) * tile, (n // columns) * (tile + caption)
        if row.image in index:
            picture = test.load(index[row.image])
            picture.thumbnail((tile - 4, tile - 4))
            sheet.paste(picture, (x + (tile - picture.width) // 2, y + (tile - picture.height) // 2))
        for k, text in enumerate(true_lines):
            draw.text((x + 3, y + tile + k * line), text, fill=(0, 110, 0))
        for k, text in enumerate(predicted_lines, len(true_lines)):
            draw.text((x + 3, y + tile + k * line), text, fill=(180, 0, 0))
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    return buffer.getvalue()


def draw_run_plots(run_dir: Path, metrics: dict[str, Any], class_names: list[str]) -> None:
    """Learning curves, confusion matrix and reliability diagram (test split, else val) of a run."""
    from fgvc.report.plots import plot_confusion_matrix, plot_learning_curves, plot_reliability

    folder = RunFolder(run_dir)
    if folder.history_file.is_file():
        plot_learning_curves(folder.history_file, folder.learning_curves)
    final = "test" if "test" in metrics else ("val" if "val" in metrics else None)
    if final:
        class_names = class_names or [str(i) for i in range(len(metrics[final]["confusion_matrix"]))]
        plot_confusion_matrix(metrics[final]["confusion_matrix"], class_names, folder.confusion_matrix, split=final)
        if folder.predictions_file(final).is_file():
            rows = folder.predictions(final)
            plot_reliability([r.confidence for r in rows], [r.right for r in rows], folder.reliability_diagram, final)


def finish_run_folder(run_dir: Path, metrics: dict[str, Any], class_names: list[str]) -> Path:
    """The last step of every run: plots, metrics.json (with provenance), the model card and report.html."""
    folder = RunFolder(run_dir)
    draw_run_plots(folder.path, metrics, class_names)
    from fgvc.report.provenance import provenance

    metrics.setdefault("provenance", provenance())
    folder.write_metrics(metrics)
    from fgvc.report.model_card import write_model_card

    write_model_card(folder.path, metrics, class_names)
    return run_report(folder.path)


def run_report(run_dir: Path) -> Path:
    """Write RUN_DIR/report.html and return its path."""
    folder = RunFolder(run_dir)
    run_dir = folder.path
    metrics = folder.metrics()
    parts = [f"<p class='muted'>{html.escape(str(run_dir))}</p>"]
    made = metrics.get("provenance")
    if made:
        parts.append(f"<p class='muted'>fgvc {html.escape(str(made.get('fgvc')))}"
                     f"{' (git ' + html.escape(made['git_commit']) + ')' if made.get('git_commit') else ''}, "
                     f"trained {html.escape(str(made.get('date')))} on {html.escape(str(made.get('hardware')))}, "
                     f"{_fmt(metrics.get('train_seconds', '?'))} s of training</p>")
    splits = [s for s in ("val", "test") if s in metrics]
    if splits:
        keys = [k for k, v in metrics[splits[-1]].items() if isinstance(v, (int, float))]
        parts.append("<h2>Metrics</h2>" + _table(["metric", *splits],
                                                  [[k, *(metrics[s].get(k, "") for s in splits)] for k in keys]))
    extra = [["seed", metrics.get("seed")], ["epochs", metrics.get("epochs")],
             ["train seconds", metrics.get("train_seconds")],
             ["parameters (trainable / total)", f"{metrics.get('parameters', {}).get('trainable', '?'):,} / "
                                                f"{metrics.get('parameters', {}).get('total', '?'):,}"],
             ["weights", metrics.get("weights") or "-"]]
    parts.append(_table(["run", ""], extra))
    final = "test" if "test" in metrics else ("val" if "val" in metrics else None)
    parts.append("<h2>Learning curves</h2>" + _img_file(folder.learning_curves, "learning curves"))
    parts.append(f"<h2>Confusion matrix ({final} split)</h2>" + _img_file(folder.confusion_matrix, "confusion matrix"))
    if folder.reliability_diagram.is_file():
        parts.append(f"<h2>Calibration ({final} split): ECE {_fmt(metrics[final].get('ece', '?'))}</h2>"
                     "<p class='muted'>Bars: accuracy of the images whose top-1 probability falls in each bin; "
                     "the dashed line is perfect calibration; the hatched gap to the bin's mean confidence is "
                     "over-confidence where the bar ends below the line.</p>" + _img_file(folder.reliability_diagram, "reliability diagram"))
    if final:
        per_class = sorted(metrics[final]["per_class_accuracy"].items(), key=lambda kv: kv[1])
        parts.append(f"<h2>Per-class accuracy ({final}, worst first)</h2>" + _table(["class", "accuracy"], per_class))
        scores = metrics[final].get("per_class")  # runs finished before it was recorded have none
        if scores:
            rows = sorted(([name, r["precision"], r["recall"], r["f1"], r["support"]] for name, r in scores.items()),
                          key=lambda row: row[3])
            parts.append(f"<h2>Per-class precision, recall, F1 ({final}, worst F1 first)</h2>"
                         + _table(["class", "precision", "recall", "F1", "support"], rows))
        names = folder.class_names()
        pairs = top_confusions(metrics[final]["confusion_matrix"], names, 15)
        parts.append("<h2>Most confused pairs</h2>" + (_table(["true", "predicted as", "count"], pairs)
                                                         if pairs else "<p>none</p>"))
    grid = _misclassified_grid(run_dir)
    if grid:
        parts.append("<h2>Misclassified test images (most confident first)</h2>" + _img(grid, "misclassified"))
    if folder.gallery_file.is_file():
        parts.append("<h2>What the model looks at</h2>" + _img_file(folder.gallery_file, "explanations"))
    config = folder.config_file.read_text() if folder.config_file.is_file() else ""
    parts.append(f"<h2>Config</h2><pre>{html.escape(config)}</pre>")
    out = folder.report_file
    out.write_text(_page(f"fgvc run: {run_dir.name}", "".join(parts)))
    return out


def group_report(group_dir: Path, rebuild_members: bool = False) -> Path:
    """Write GROUP/report.html and return its path. Members' reports are written where missing (every
    run writes its own when it finishes), or all of them again with ``rebuild_members``; members of a
    repeat or crossval get the group's CIs in their model cards."""
    from fgvc.report.model_card import write_model_card

    group_dir = Path(group_dir)
    group = GroupFolder(group_dir)
    summary = json.loads(group.summary_file.read_text())
    parts = [f"<p class='muted'>{html.escape(str(group_dir))}: {summary['kind']} over "
             f"{len(summary['members'])} runs</p>"]
    if summary.get("warning"):
        parts.append(f"<p class='warning'><b>warning:</b> {html.escape(summary['warning'])}</p>")
    for split, table in summary["metrics"].items():
        rows = []
        for metric, d in table.items():
            ci = f"[{d['ci_low']:.4f}, {d['ci_high']:.4f}]" if d.get("ci_low") is not None else "-"
            rows.append([metric, d["mean"], d["std"], ci, d["min"], d["max"], d["n"], d.get("method", "t")])
        parts.append(f"<h2>{html.escape(split)}: mean and {int(100 * next(iter(table.values()))['confidence'])}% CI</h2>"
                     + _table(["metric", "mean", "std", "CI", "min", "max", "n", "CI method"], rows))
    parts += _group_plots(group_dir, summary)
    member_rows = []
    for name in summary["members"]:
        member = group.member(name)
        metrics = member.metrics()
        if rebuild_members:
            draw_run_plots(member.path, metrics, member.class_names() or [])
        if summary["kind"] in ("repeat", "crossval") and member.config_file.is_file():
            write_model_card(member.path, metrics, group_summary=summary)  # the member's card gets the CIs
        if rebuild_members or not member.report_file.is_file():
            run_report(member.path)
        test = metrics.get("test", metrics.get("val", {}))
        link = f"{name}/{RunFolder.REPORT}"
        member_rows.append(f"<tr><td><a href='{html.escape(link)}'>{html.escape(name)}</a></td>"
                           f"<td>{summary['keys'].get(name, '')}</td><td>{_fmt(test.get('top1', ''))}</td>"
                           f"<td>{_fmt(test.get('f1_macro', ''))}</td><td>{_fmt(metrics.get('train_seconds', ''))}</td></tr>")
    parts.append("<h2>Members</h2><table><tr><th>run</th><th>seed / fold</th><th>top1</th><th>f1_macro</th>"
                 "<th>train seconds</th></tr>" + "".join(member_rows) + "</table>")
    out = group.report_file
    out.write_text(_page(f"fgvc group: {group_dir.name}", "".join(parts)))
    return out


def _group_plots(group_dir: Path, summary: dict) -> list[str]:
    """The members' metrics as points with the CI, per split, and their learning curves together."""
    from fgvc.report.group_plots import plot_member_curves, plot_members
    from fgvc.report.plots import read_history

    folder = GroupFolder(group_dir)
    members = {name: folder.member(name) for name in summary["members"]}
    metrics = {name: m.metrics() if m.metrics_file.is_file() else {} for name, m in members.items()}
    parts = []
    for split, table in summary["metrics"].items():
        out = folder.members_plot(split)
        plot_members(table, {n: m.get(split, {}) for n, m in metrics.items()}, split, out)
        parts.append(f"<h2>{html.escape(split)}: each member and the mean with its CI</h2>" + _img_file(out, split))
    histories = {n: read_history(m.history_file) for n, m in members.items() if m.history_file.is_file()}
    if histories:
        out = plot_member_curves(histories, folder.curves_plot)
        parts.append("<h2>Learning curves of the members</h2>" + _img_file(out, "member curves"))
    return parts

"""LaTeX tables (booktabs, siunitx) rendered with pandas' ``Styler.to_latex`` from the same frames the
Markdown tables come from (:mod:`fgvc.report.frames`).

A metric's cell is its mean +- half the width of its 95 % CI (an S column: siunitx aligns the decimal
points), or the mean with the CI's bounds ``[low, high]`` (``ci_brackets``). The value that is best in its
column *and* significantly better than every other row by the paired test is set in bold; nothing is
bold where no row is.
"""

from __future__ import annotations

import math
import re
from typing import Any, Optional, Sequence

import pandas as pd

from fgvc.report.frames import digits, metric_label

LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                 "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
MISSING = "{--}"
# mean and uncertainty spaced as in running text; \bfseries in a cell makes the number bold
SIUNITX_OPTIONS = "separate-uncertainty, table-align-uncertainty=false, detect-weight"


def latex_escape(text: str) -> str:
    """Plain text as LaTeX (underscores, %, &, braces ...)."""
    return "".join(LATEX_SPECIAL.get(char, char) for char in str(text))


def label_key(*parts: str) -> str:
    """A \\label key: letters, digits, hyphens and colons only."""
    return ":".join(re.sub(r"[^A-Za-z0-9-]+", "-", str(p)).strip("-") for p in parts if str(p))


def _places(values: Sequence[float], decimals: int) -> int:
    """Digits before the point of the widest value (siunitx's table-format)."""
    finite = [abs(v) for v in values if not (v is None or pd.isna(v))]
    return max(1, len(f"{max(finite):.{decimals}f}".split(".")[0])) if finite else 1


def metric_cells(frame: pd.DataFrame, metric: str, ci_brackets: bool) -> tuple[list[str], str]:
    """One metric's column as LaTeX cells and its column format."""
    d = digits(metric)
    mean, low, high = (frame[f"{metric} {k}"] if f"{metric} {k}" in frame else pd.Series(math.nan, frame.index)
                       for k in ("mean", "low", "high"))
    best = frame[f"{metric} best"] if f"{metric} best" in frame else pd.Series(False, frame.index)
    half = (high - low) / 2
    cells = []
    for m, lo, hi, h, bold in zip(mean, low, high, half, best):
        if pd.isna(m):
            cells.append(MISSING)
        elif ci_brackets:
            text = f"{m:.{d}f}" + ("" if pd.isna(lo) else f" [{lo:.{d}f}, {hi:.{d}f}]")
            cells.append(rf"\textbf{{{text}}}" if bold else text)
        else:
            text = f"{m:.{d}f}" + ("" if pd.isna(h) else rf" \pm {h:.{d}f}")
            cells.append(rf"\bfseries {text}" if bold else text)
    if ci_brackets:
        return cells, "r"
    spec = f"{_places(mean, d)}.{d}"
    if half.notna().any():
        spec += f"({_places(half, d)}.{d})"
    # the options in the column, so a table \input into any paper with siunitx looks the same
    return cells, f"S[table-format={spec}, {SIUNITX_OPTIONS}]"


def render(cells: pd.DataFrame, column_format: str, caption: str, label: str, wide: bool = False) -> str:
    """A booktabs table through Styler.to_latex: the index (escaped here) becomes the first column, named
    by the index's name; the other cells and the headers are LaTeX already."""
    first = cells.index.name or ""
    table = cells.copy()
    table.insert(0, first, [latex_escape(i) for i in cells.index])
    styler = table.style.hide(axis="index")
    return styler.to_latex(hrules=True, siunitx=True, column_format=column_format, caption=caption, label=label,
                           position="t" if wide else "tbp", position_float="centering",
                           environment="table*" if wide else None) + "\n"


def value_table(frame: pd.DataFrame, metrics: Sequence[str], caption: str, label: str, ci_brackets: bool = False,
                first: str = "", extra: Optional[dict[str, tuple[list[str], str]]] = None) -> str:
    """Rows of ``frame`` (arms, splits, runs) x metrics: mean +- CI half-width (or [low, high]), bold where
    the column's value is significantly best. ``extra``: more columns (name -> cells, format)."""
    columns, formats = {}, ["l"]
    for m in metrics:
        columns[latex_escape(metric_label(m))], spec = metric_cells(frame, m, ci_brackets)
        formats.append(spec)
    for name, (cells, spec) in (extra or {}).items():
        columns[name] = cells
        formats.append(spec)
    table = pd.DataFrame(columns, index=[str(i) for i in frame.index])
    table.index.name = first
    return render(table, "".join(formats), caption, label, wide=len(columns) > 3)


def difference_table(frame: pd.DataFrame, caption: str, label: str) -> str:
    """Each arm minus the reference, per metric: the paired difference [CI bounds]; bold where significant."""
    metrics = frame.attrs["metrics"]
    rows = frame[~frame["reference"]]
    columns = {}
    for m in metrics:
        d = digits(m)
        cells = []
        for _, row in rows.iterrows():
            if not row[f"{m} verdict"]:
                cells.append(MISSING)
                continue
            text = (f"${row[f'{m} diff']:+.{d}f}$ [${row[f'{m} diff low']:+.{d}f}$, "
                    f"${row[f'{m} diff high']:+.{d}f}$]")
            cells.append(rf"\textbf{{{text}}}" if row[f"{m} verdict"] != "same" else text)
        columns["$\\Delta$ " + latex_escape(metric_label(m))] = cells
    table = pd.DataFrame(columns, index=[str(i) for i in rows.index])
    table.index.name = "arm"
    return render(table, "l" + "r" * len(columns), caption, label, wide=len(columns) > 2)


def minutes_column(frame: pd.DataFrame) -> dict[str, tuple[list[str], str]]:
    if "minutes" not in frame or frame["minutes"].isna().all():
        return {}
    cells = [MISSING if pd.isna(v) else f"{v:.1f}" for v in frame["minutes"]]
    return {"min / run": (cells, f"S[table-format={_places(frame['minutes'], 1)}.1]")}


def seeds_text(seeds: Sequence[Any], unit: str = "seeds") -> str:
    return f"{len(seeds)} {unit} ({', '.join(map(str, seeds))})" if seeds else f"no {unit}"


def question_caption(frame: pd.DataFrame, ci_brackets: bool, unit: str = "seeds") -> str:
    """What a reader needs to trust the table: seeds, split, CI, reference, test and the bold rule."""
    a = frame.attrs
    confidence = f"{round(100 * a['confidence'])}~\\%"
    shown = (f"mean [bounds of the {confidence} CI]" if ci_brackets
             else f"mean $\\pm$ half the width of the {confidence} CI")
    methods = "; CI: " + ", ".join(latex_escape(m) for m in a["ci_methods"]) if a.get("ci_methods") else ""
    tests = " and ".join(latex_escape(t) for t in a["tests"]) or "paired t-test"
    bold = any(frame[f"{m} best"].any() for m in a["metrics"])
    percent = [latex_escape(metric_label(m).split(" (")[0]) for m in a["metrics"] if "(%)" in metric_label(m)]
    return (f"{latex_escape(a['title'])}. {latex_escape(a['split']).capitalize()} split, "
            f"{seeds_text(a['seeds'], unit)}, the same for every arm; {shown} over the {unit}{methods}"
            + (f"; {', '.join(percent)} in \\%" if percent else "") + ". "
            f"Reference arm: {latex_escape(a['reference'])}; each arm is compared with it by a {tests} over the "
            f"{unit}. "
            + ("Bold: best in its column and significantly better (5~\\%) than every other arm."
               if bold else "No value is bold: no arm is significantly better (5~\\%) than every other."))


def question_tables(frame: pd.DataFrame, ci_brackets: bool, label_prefix: str) -> dict[str, str]:
    """A question's value table and its table of paired differences: {file stem: LaTeX}."""
    metrics = frame.attrs["metrics"]
    stem = label_key(label_prefix, frame.attrs.get("name") or "table").replace(":", "-")
    reference = latex_escape(frame.attrs["reference"])
    tests = " and ".join(latex_escape(t) for t in frame.attrs["tests"]) or "paired t-test"
    out = {stem: value_table(frame, metrics, question_caption(frame, ci_brackets),
                             f"tab:{label_key(label_prefix, frame.attrs.get('name') or 'table')}", ci_brackets,
                             "arm", minutes_column(frame))}
    if (~frame["reference"]).any():
        caption = (f"{latex_escape(frame.attrs['title'])}: each arm minus the reference {reference}, paired by "
                   f"seed ({seeds_text(frame.attrs['seeds'])}, {latex_escape(frame.attrs['split'])} split), with the "
                   f"{round(100 * frame.attrs['confidence'])}~\\% CI of the difference ({tests}). Bold: "
                   "significant at 5~\\%.")
        out[f"{stem}-differences"] = difference_table(
            frame, caption, f"tab:{label_key(label_prefix, frame.attrs.get('name') or 'table', 'differences')}")
    return out

"""Markdown tables of a question study: per arm, mean and CI of each metric, the paired difference
from the reference arm with its CI and a verdict word, time and (when profiled) parameters and memory."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import pandas as pd

from fgvc.evaluate.stats import Comparison
from fgvc.models.summary import human_bytes
from fgvc.report.frames import SHORT_NAMES, digits, question_frame


def interval(mean: float, low: float, high: float, places: int, signed: bool = False) -> str:
    """'74.3 [72.1, 76.4]' (or '-' for no value); ``signed``: '+1.2 [-0.4, +2.8]'."""
    if pd.isna(mean):
        return "-"
    sign = "+" if signed else ""
    text = f"{mean:{sign}.{places}f}"
    if not (pd.isna(low) or pd.isna(high)):
        text += f" [{low:{sign}.{places}f}, {high:{sign}.{places}f}]"
    return text


def mean_ci_cell(frame: pd.DataFrame, arm: str, metric: str) -> str:
    row = frame.loc[arm]
    return interval(row[f"{metric} mean"], row[f"{metric} low"], row[f"{metric} high"], digits(metric))


def difference_cell(frame: pd.DataFrame, arm: str, metric: str) -> str:
    """'-3.1 [-5.0, -1.2] worse' for the paired difference arm - reference."""
    row = frame.loc[arm]
    if not row[f"{metric} verdict"]:
        return "-"
    return interval(row[f"{metric} diff"], row[f"{metric} diff low"], row[f"{metric} diff high"], digits(metric),
                    signed=True) + f" {row[f'{metric} verdict']}"


def _minutes(minutes: float) -> str:
    return "-" if pd.isna(minutes) else f"{minutes:.1f}"


def question_markdown(question: dict[str, Any], metrics: Optional[list[str]] = None,
                      root: Optional[Path] = None) -> str:
    """One question as a heading and a Markdown table (rendered from :func:`question_frame`, as the
    LaTeX table is); the column's significantly best value in bold."""
    if "error" in question:
        return f"### {question['title']}\n\nNot answered: the question failed ({question['error']}).\n"
    frame = question_frame(question, metrics, root)
    metrics, reference = frame.attrs["metrics"], question["reference"]
    profiled = "trainable_params" in frame.columns
    header = ["arm", "overrides"] + [f"{SHORT_NAMES.get(m, m)} mean [95% CI]" for m in metrics]
    header += [f"{SHORT_NAMES.get(m, m)} vs {reference}" for m in metrics]
    header += ["min / run"]
    if profiled:
        header += ["trainable params", "memory (est.)"]
    lines = [f"### {question['title']}", "",
             f"Split: {question['split']}; seeds: {', '.join(map(str, question['seeds']))}; "
             f"differences are paired by seed (arm - {reference}), 'same' = not significant at 5 %"
             + ("; bold: best and significantly better than every other arm." if any(
                 frame[f"{m} best"].any() for m in metrics) else "."), "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for arm, row in frame.iterrows():
        cells = [f"**{arm}**" if row["reference"] else arm,
                 " ".join(f"`{o}`" for o in row["overrides"]) or "(reference)"]
        cells += [f"**{mean_ci_cell(frame, arm, m)}**" if row[f"{m} best"] else mean_ci_cell(frame, arm, m)
                  for m in metrics]
        cells += ["" if row["reference"] else difference_cell(frame, arm, m) for m in metrics]
        cells += [_minutes(row["minutes"])]
        if profiled:
            start, trainable = row.get("trainable_params_at_start"), f"{int(row.get('trainable_params') or 0):,}"
            cells += [f"{int(start):,} -> {trainable}" if not pd.isna(start) else trainable,
                      human_bytes(None if pd.isna(row.get("memory_bytes")) else int(row["memory_bytes"]))]
        lines.append("| " + " | ".join(cells) + " |")
    if profiled:
        lines += ["", "Memory (est.): parameters + gradients + optimizer state + saved activations of one "
                      "training batch"
                      + (" (gradual unfreezing: at its last epoch; its trainable params read first epoch -> last)."
                         if "trainable_params_at_start" in frame.columns else ".")]
    return "\n".join(lines) + "\n"


def comparison_cells(c: Comparison) -> list[str]:
    """mean A, mean B, B - A, CI, test, p of one comparison, in the verdicts' unit (points for proportions)."""
    from fgvc.evaluate.stats import in_points

    mean_a, mean_b, diff, low, high = (in_points(c.metric, v)[0] for v in
                                       (c.mean_a, c.mean_b, c.diff, c.ci_low, c.ci_high))
    return [f"{mean_a:.2f}", f"{mean_b:.2f}", f"{diff:+.2f}", f"[{low:+.2f}, {high:+.2f}]", c.test,
            f"{c.p_value:.3g}"]


def compare_markdown(rows: list[tuple[str, str, Comparison, str]], split: str) -> str:
    """``fgvc compare``'s table and verdicts as Markdown, in the verdicts' unit (points for proportions)."""
    from fgvc.evaluate.stats import in_points

    lines = [f"### {split} split: B - A", "", "| A | B | metric | mean A | mean B | B - A | 95 % CI | test | p |",
             "|---|---|---|---|---|---|---|---|---|"]
    for a, b, c, _ in rows:
        unit = in_points(c.metric, 1.0)[1].strip() or "value"
        lines.append(f"| {a} | {b} | {c.metric} ({unit}) | " + " | ".join(comparison_cells(c)) + " |")
    lines += [""] + [f"- {text}" for *_, text in rows]
    return "\n".join(lines) + "\n"


def study_markdown(result: dict[str, Any], root: Optional[Path] = None) -> str:
    """Every finished question of a study, in order (``root``: the study folder, where its arms are)."""
    parts = [f"<!-- written by fgvc study {result['study']} -->", ""]
    parts += [question_markdown(q, root=root) for q in result["questions"].values()]
    return "\n".join(parts)

"""Markdown tables of a question study: per arm, mean and CI of each metric, the paired difference
from the reference arm with its CI and a verdict word, time and (when profiled) parameters and memory."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, Optional

from fgvc.evaluate.stats import Comparison, b_is_better, metric_range, significant
from fgvc.models.summary import human_bytes

SHORT_NAMES = {"top1": "top-1", "f1_macro": "macro F1", "auroc_macro": "AUROC", "ece": "ECE"}
COMPARISON_FIELDS = {f.name for f in fields(Comparison)}


def _scale(metric: str) -> float:
    return 100.0 if metric_range(metric) == "proportion" and metric != "auroc_macro" else 1.0


def _digits(metric: str) -> int:
    return 1 if _scale(metric) == 100.0 else 3


def mean_ci(stats: Optional[dict[str, Any]], metric: str) -> str:
    """'74.3 [72.1, 76.4]' (proportions in %, AUROC and others as they are)."""
    if not stats:
        return "-"
    k, d = _scale(metric), _digits(metric)
    text = f"{stats['mean'] * k:.{d}f}"
    if stats.get("ci_low") is not None and stats.get("ci_high") is not None:
        text += f" [{stats['ci_low'] * k:.{d}f}, {stats['ci_high'] * k:.{d}f}]"
    return text


def difference(row: Optional[dict[str, Any]]) -> str:
    """'-3.1 [-5.0, -1.2] worse' for the paired difference arm - reference."""
    if row is None:
        return "-"
    c = Comparison(**{k: v for k, v in row.items() if k in COMPARISON_FIELDS})
    k, d = _scale(c.metric), _digits(c.metric)
    word = ("better" if b_is_better(c) else "worse") if significant(c) else "same"
    return f"{c.diff * k:+.{d}f} [{c.ci_low * k:+.{d}f}, {c.ci_high * k:+.{d}f}] {word}"


def _minutes(seconds: Optional[float]) -> str:
    return "-" if seconds is None else f"{seconds / 60:.1f}"


def question_markdown(question: dict[str, Any], metrics: Optional[list[str]] = None) -> str:
    """One question as a heading and a Markdown table."""
    if "error" in question:
        return f"### {question['title']}\n\nNot answered: the question failed ({question['error']}).\n"
    arms = question["arms"]
    metrics = metrics or [m for m in SHORT_NAMES if any(m in a["metrics"] for a in arms)]
    profiled = any("trainable_params" in a for a in arms)
    by_pair = {(c["b"], c["metric"]): c for c in question["comparisons"]}
    header = ["arm", "overrides"] + [f"{SHORT_NAMES.get(m, m)} mean [95% CI]" for m in metrics]
    header += [f"{SHORT_NAMES.get(m, m)} vs {question['reference']}" for m in metrics]
    header += ["min / run"]
    if profiled:
        header += ["trainable params", "memory (est.)"]
    lines = [f"### {question['title']}", "",
             f"Split: {question['split']}; seeds: {', '.join(map(str, question['seeds']))}; "
             f"differences are paired by seed (arm - {question['reference']}), 'same' = not significant at 5 %.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for arm in arms:
        reference = arm["arm"] == question["reference"]
        cells = [f"**{arm['arm']}**" if reference else arm["arm"],
                 " ".join(f"`{o}`" for o in arm["overrides"]) or "(reference)"]
        cells += [mean_ci(arm["metrics"].get(m), m) for m in metrics]
        cells += ["" if reference else difference(by_pair.get((arm["arm"], m))) for m in metrics]
        cells += [_minutes(arm.get("train_seconds"))]
        if profiled:
            start = arm.get("trainable_params_at_start")
            trainable = f"{arm.get('trainable_params', 0):,}"
            cells += [f"{start:,} -> {trainable}" if start is not None else trainable, human_bytes(arm.get("memory_bytes"))]
        lines.append("| " + " | ".join(cells) + " |")
    if profiled:
        lines += ["", "Memory (est.): parameters + gradients + optimizer state + saved activations of one training batch"
                      + (" (gradual unfreezing: at its last epoch; its trainable params read first epoch -> last)."
                         if any("trainable_params_at_start" in a for a in arms) else ".")]
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


def study_markdown(result: dict[str, Any]) -> str:
    """Every finished question of a study, in order."""
    parts = [f"<!-- written by fgvc study {result['study']} -->", ""]
    parts += [question_markdown(q) for q in result["questions"].values()]
    return "\n".join(parts)

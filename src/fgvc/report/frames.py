"""One pandas DataFrame per compared table (a study question, a compare of groups, a sweep), from which the
Markdown table (tables.md, the docs) and the LaTeX table (a paper) are both rendered: the numbers of the
two can never disagree.

A question frame has one row per arm (the reference first) and, per metric, its mean and CI in display
units (proportions in %, AUROC and others as they are), the paired difference from the reference with
its CI and verdict, and whether the value is the column's *significantly best*: best in the column and
significantly better than every other arm by a paired test over the seeds.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd

from fgvc.evaluate.stats import Comparison, b_is_better, compare_values, lower_is_better, metric_range, significant
from fgvc.groupfolder import GroupFolder
from fgvc.report.records import read_record

SHORT_NAMES = {"top1": "top-1", "f1_macro": "macro F1", "auroc_macro": "AUROC", "ece": "ECE"}
COMPARISON_FIELDS = {f.name for f in fields(Comparison)}


def scale(metric: str) -> float:
    """Proportions are shown in % (AUROC as it is, the way papers print it)."""
    return 100.0 if metric_range(metric) == "proportion" and metric != "auroc_macro" else 1.0


def digits(metric: str) -> int:
    return 1 if scale(metric) == 100.0 else 3


def metric_label(metric: str) -> str:
    """'top-1 (%)', 'AUROC': a column's name with its unit."""
    return SHORT_NAMES.get(metric, metric) + (" (%)" if scale(metric) == 100.0 else "")


def to_comparison(row: dict[str, Any]) -> Comparison:
    return Comparison(**{k: v for k, v in row.items() if k in COMPARISON_FIELDS})


def verdict_word(c: Comparison) -> str:
    return ("better" if b_is_better(c) else "worse") if significant(c) else "same"


# -- the members' values, paired by seed (or fold) -------------------------------------------------
def arm_group(arm: dict[str, Any], root: Optional[Path]) -> Optional[Path]:
    """An arm's group folder: as recorded, else by its name under ``root``'s arms/ (a study moved or read
    from another working directory)."""
    recorded = Path(arm.get("group", ""))
    if arm.get("group") and GroupFolder(recorded).group_file.is_file():
        return recorded
    if root is not None and arm.get("group"):
        for candidate in (GroupFolder(root).arms_dir / recorded.name, Path(root) / recorded.name):
            if GroupFolder(candidate).group_file.is_file():
                return candidate
    return None


# -- the frame ---------------------------------------------------------------------------------------
def question_metrics(question: dict[str, Any], metrics: Optional[Sequence[str]] = None) -> list[str]:
    return list(metrics or [m for m in SHORT_NAMES if any(m in a["metrics"] for a in question["arms"])])


def question_frame(question: dict[str, Any], metrics: Optional[Sequence[str]] = None,
                   root: Optional[Path] = None) -> pd.DataFrame:
    """A study question (study.json's form) as a DataFrame, one row per arm; ``root``: the study folder, to
    find the arms' groups for the pairwise tests the bold rule needs beyond those with the reference."""
    arms, reference = question["arms"], question["reference"]
    metrics = question_metrics(question, metrics)
    by_pair = {(c["b"], c["metric"]): to_comparison(c) for c in question["comparisons"]}
    rows = []
    for arm in arms:
        row: dict[str, Any] = {"arm": arm["arm"], "overrides": list(arm.get("overrides", [])),
                               "reference": arm["arm"] == reference}
        for m in metrics:
            k, stats = scale(m), arm["metrics"].get(m) or {}
            row[f"{m} mean"] = stats["mean"] * k if "mean" in stats else np.nan
            has_ci = stats.get("ci_low") is not None and stats.get("ci_high") is not None
            row[f"{m} low"] = stats["ci_low"] * k if has_ci else np.nan
            row[f"{m} high"] = stats["ci_high"] * k if has_ci else np.nan
            c = by_pair.get((arm["arm"], m))
            row[f"{m} diff"], row[f"{m} diff low"], row[f"{m} diff high"] = (
                (c.diff * k, c.ci_low * k, c.ci_high * k) if c else (np.nan,) * 3)
            row[f"{m} p"] = c.p_value if c else np.nan
            row[f"{m} verdict"] = verdict_word(c) if c else ""
        row["minutes"] = arm["train_seconds"] / 60 if arm.get("train_seconds") is not None else np.nan
        for key in ("trainable_params", "trainable_params_at_start", "memory_bytes"):
            if key in arm:
                row[key] = arm[key]
        rows.append(row)
    frame = pd.DataFrame(rows).set_index("arm")
    for m in metrics:
        frame[f"{m} best"] = _significantly_best(question, m, frame, root)
    tests = sorted({c.get("test", "") for c in question["comparisons"]} - {""})
    frame.attrs.update({"title": question.get("title", question.get("name", "")), "name": question.get("name", ""),
                        "reference": reference, "split": question["split"], "seeds": list(question["seeds"]),
                        "metrics": metrics, "tests": tests,
                        "confidence": _confidence(question),
                        "ci_methods": sorted({(a["metrics"].get(m) or {}).get("method", "") for a in arms
                                              for m in metrics} - {""})})
    return frame


def _confidence(question: dict[str, Any]) -> float:
    for arm in question["arms"]:
        for stats in arm["metrics"].values():
            if stats.get("confidence"):
                return float(stats["confidence"])
    return 0.95


def _significantly_best(question: dict[str, Any], metric: str, frame: pd.DataFrame, root: Optional[Path]) -> list[bool]:
    """True for the arm whose mean is best in the column when the paired tests say it is significantly
    better than every other arm (a pair with no test, e.g. groups not found, counts as not shown)."""
    means = frame[f"{metric} mean"]
    flags = [False] * len(frame)
    if means.notna().sum() < 2:
        return flags
    best = means.idxmin() if lower_is_better(metric) else means.idxmax()
    for other in frame.index[means.notna()]:
        if other != best:
            c = _pairwise(question, metric, best, other, root)
            if c is None or not significant(c) or not b_is_better(c):
                return flags
    flags[list(frame.index).index(best)] = True
    return flags


def _pairwise(question: dict[str, Any], metric: str, best: str, other: str,
              root: Optional[Path]) -> Optional[Comparison]:
    """The comparison ``best - other`` of ``metric`` (B = best): the recorded one where one side is the
    reference, else a paired test over the two arms' members' seeds."""
    reference = question["reference"]
    for c in question["comparisons"]:
        if c["metric"] == metric and c["a"] == reference:
            if other == reference and c["b"] == best:
                return to_comparison(c)
            if best == reference and c["b"] == other:  # recorded as other - best: turned round
                r = to_comparison(c)
                return Comparison(metric, r.n_b, r.n_a, r.paired, r.mean_b, r.mean_a, -r.diff, -r.ci_high,
                                  -r.ci_low, r.test, r.p_value, r.wilcoxon_p, r.confidence, r.unshared)
    arms = {a["arm"]: a for a in question["arms"]}
    groups = [arm_group(arms[name], root) for name in (other, best)]
    if None in groups:
        return None
    seeds = question.get("seeds")
    a, b = (GroupFolder(g).metric_values(question["split"], metric, seeds) for g in groups)
    if len(a) < 2 or len(b) < 2:
        return None
    return compare_values(metric, a, b, _confidence(question))


def groups_question(group_dirs: Sequence[Path], split: str = "test", metrics: Optional[Sequence[str]] = None,
                    title: str = "", names: Optional[Sequence[str]] = None,
                    overrides: Optional[Sequence[Sequence[str]]] = None) -> dict[str, Any]:
    """Run groups (a compare, a sweep's cells, a study of configs, a search's confirmation) as a question in
    study.json's form, each compared with the first, paired by seed where the seeds match."""
    group_dirs = [Path(g) for g in group_dirs]
    names = list(names or [g.name for g in group_dirs])
    arms, comparisons, seeds = [], [], None
    for i, (name, group) in enumerate(zip(names, group_dirs)):
        summary = read_record(GroupFolder(group).summary_file)
        table = summary["metrics"].get(split, {})
        chosen = question_metrics({"arms": [{"metrics": table}]}, metrics)
        seconds = summary["metrics"].get("time", {}).get("train_seconds", {}).get("mean")
        arms.append({"arm": name, "overrides": list(overrides[i]) if overrides else [], "group": str(group),
                     "seeds": len(summary["members"]), "metrics": {m: table[m] for m in chosen if m in table},
                     "train_seconds": seconds})
        if seeds is None:
            seeds = sorted(summary.get("keys", {}).values())
        if i:
            for m in chosen:
                a, b = GroupFolder(group_dirs[0]).metric_values(split, m), GroupFolder(group).metric_values(split, m)
                if len(a) >= 2 and len(b) >= 2:
                    comparisons.append({"a": names[0], "b": name, **compare_values(m, a, b).to_dict()})
    return {"name": "", "title": title, "reference": names[0], "split": split, "seeds": seeds or [],
            "arms": arms, "comparisons": comparisons}


def summary_frame(summary: dict[str, Any], metrics: Optional[Sequence[str]] = None) -> pd.DataFrame:
    """A repeat or crossval group's summary.json as a frame: one row per split (val, test), mean and CI of
    each metric in display units (nothing is compared, so nothing is best)."""
    splits = [s for s in ("val", "test") if s in summary["metrics"]]
    chosen = list(metrics or [m for m in (*SHORT_NAMES, "ece") if any(m in summary["metrics"][s] for s in splits)])
    chosen = list(dict.fromkeys(chosen))
    rows = []
    for split in splits:
        row: dict[str, Any] = {"split": split}
        for m in chosen:
            stats, k = summary["metrics"][split].get(m) or {}, scale(m)
            row[f"{m} mean"] = stats["mean"] * k if "mean" in stats else np.nan
            has_ci = stats.get("ci_low") is not None and stats.get("ci_high") is not None
            row[f"{m} low"], row[f"{m} high"] = (stats["ci_low"] * k, stats["ci_high"] * k) if has_ci else (np.nan,) * 2
        rows.append(row)
    frame = pd.DataFrame(rows).set_index("split") if rows else pd.DataFrame()
    frame.attrs.update({"metrics": chosen, "ci_methods": sorted({(summary["metrics"][s].get(m) or {}).get("method", "")
                                                                 for s in splits for m in chosen} - {""})})
    return frame


def values_frame(rows: dict[str, dict[str, Any]], metrics: Optional[Sequence[str]] = None) -> pd.DataFrame:
    """Single evaluations (a run's splits, an ensemble and its members): {row name: metrics} as a frame of
    values in display units, with no CI."""
    chosen = list(metrics or [m for m in (*SHORT_NAMES, "ece") if any(m in r for r in rows.values())])
    chosen = list(dict.fromkeys(chosen))
    frame = pd.DataFrame([{"name": name, **{f"{m} mean": (r[m] * scale(m) if isinstance(r.get(m), (int, float))
                                                          else np.nan) for m in chosen}}
                          for name, r in rows.items()]).set_index("name")
    frame.attrs["metrics"] = chosen
    return frame

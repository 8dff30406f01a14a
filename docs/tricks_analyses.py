"""The training-trick questions that are analyses of finished runs rather than arms of their own:
seeds (how far the seed alone moves each metric), ensembles (members vs their average, with the
members' diversity) and metrics (where top-1, macro F1 and AUROC rank the arms differently).
Reads runs/study_tricks (made by `fgvc study configs/study_tricks`); prints Markdown for docs/tricks.md.

    .venv/bin/fgvc repeat configs/study_tricks/base.yaml --seeds 0,1,2,3,4,5,6,7,8,9 \
        --out runs/study_tricks/arms/base          # the reference arm over 10 seeds (3 come from the study)
    .venv/bin/python docs/tricks_analyses.py
    .venv/bin/python docs/tricks_analyses.py --metrics-only     # the metrics question alone, from docs/tricks.md
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

from scipy.stats import kendalltau

from fgvc.evaluate.ensemble import ensemble_runs
from fgvc.evaluate.stats import describe
from fgvc.experiments.groups import member_metrics, read_group

STUDY = Path(next((a for a in sys.argv[1:] if not a.startswith("--")), "runs/study_tricks"))
REFERENCE = STUDY / "arms" / "base"
DOCS = Path(__file__).with_name("tricks.md")
METRICS = ("top1", "f1_macro", "auroc_macro")


def seeds() -> None:
    runs = member_metrics(REFERENCE)
    print(f"### Seeds: the reference arm over {len(runs)} seeds\n")
    print("| metric | mean [95% CI] | std | min | max | max - min |")
    print("|---|---|---|---|---|---|")
    for metric in METRICS:
        values = [m["test"][metric] for m in runs.values()]
        d = describe(values, metric=metric)
        k = 100 if metric != "auroc_macro" else 1
        digits = 2 if k == 100 else 4
        print(f"| {metric} | {d.mean * k:.{digits}f} [{d.ci_low * k:.{digits}f}, {d.ci_high * k:.{digits}f}] | "
              f"{d.std * k:.{digits}f} | {min(values) * k:.{digits}f} | {max(values) * k:.{digits}f} | "
              f"{(max(values) - min(values)) * k:.{digits}f} |")
    print()


def ensembles(size: int = 3) -> None:
    group = read_group(REFERENCE)
    names = [n for n in group["members"] if (REFERENCE / n / "metrics.json").is_file()]
    print(f"### Ensembles of {size} seeds of the reference arm (each disjoint triple of seeds)\n")
    print("| members | members' mean top-1 | ensemble top-1 | members' mean macro F1 | ensemble macro F1 | "
          "ensemble AUROC | disagreement | error correlation |")
    print("|---|---|---|---|---|---|---|---|")
    for start in range(0, len(names) - size + 1, size):
        chosen = names[start:start + size]
        result = ensemble_runs([REFERENCE / n for n in chosen], "test")
        m, e, d = result["members_mean"], result["ensemble"], result["diversity"]
        print(f"| {', '.join(chosen)} | {m['top1'] * 100:.2f} | {e['top1'] * 100:.2f} | {m['f1_macro']:.3f} | "
              f"{e['f1_macro']:.3f} | {e['auroc_macro']:.3f} | {d['disagreement']:.3f} | {d['error_correlation']:.3f} |")
    print()


def answered_arms(docs: Path = DOCS) -> dict[str, dict[str, float]]:
    """Mean top-1, macro F1 and AUROC of every ELPV arm in the answered tables of docs/tricks.md (the
    study spans sessions and machines; the doc keeps every answered table). Tables of from-scratch
    questions (another data set) are left out; an arm shared by questions counts once."""
    arms: dict[str, dict[str, float]] = {}
    section = ""
    for line in docs.read_text().splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if ("from scratch" in section.lower() or len(cells) < 5 or not line.startswith("| ") or cells[0] == "arm"
                or "[" not in cells[2]):
            continue
        values = {m: float(cells[i].split()[0]) for m, i in zip(METRICS, (2, 3, 4))}
        values["top1"] /= 100
        values["f1_macro"] /= 100
        key = tuple(values[m] for m in METRICS)
        if key not in {tuple(v[m] for m in METRICS) for v in arms.values()}:
            arms[f"{section.split()[0].lower().rstrip(':,')}/{cells[0].strip('*')}"] = values
    return arms


def metric_rankings() -> None:
    arms = answered_arms()
    if len(arms) < 3:
        print("### Metrics: pending (fewer than 3 answered arms in docs/tricks.md)\n")
        return
    names = list(arms)
    print(f"### Metrics: do top-1, macro F1 and AUROC rank the {len(names)} ELPV arms alike?\n")
    print("| pair | Kendall tau | p |")
    print("|---|---|---|")
    for a, b in itertools.combinations(METRICS, 2):
        tau, p = kendalltau([arms[n][a] for n in names], [arms[n][b] for n in names])
        print(f"| {a} vs {b} | {tau:.2f} | {p:.2g} |")
    ranks = {m: {n: r for r, n in enumerate(sorted(names, key=lambda n: -arms[n][m]), 1)} for m in METRICS}
    moved = sorted(names, key=lambda n: -(max(ranks[m][n] for m in METRICS) - min(ranks[m][n] for m in METRICS)))
    print("\nArms whose rank moves most between the metrics (rank by top-1 / macro F1 / AUROC):\n")
    for n in moved[:6]:
        print(f"- {n}: {ranks['top1'][n]} / {ranks['f1_macro'][n]} / {ranks['auroc_macro'][n]} "
              f"(top-1 {arms[n]['top1'] * 100:.1f}, F1 {arms[n]['f1_macro']:.3f}, AUROC {arms[n]['auroc_macro']:.3f})")
    print()


if __name__ == "__main__":
    if "--metrics-only" in sys.argv:  # needs no run folders: reads docs/tricks.md
        metric_rankings()
    else:
        seeds()
        ensembles()
        metric_rankings()

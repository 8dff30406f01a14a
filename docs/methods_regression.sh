#!/usr/bin/env bash
# Deitsch et al.'s regression lever on the cached-feature probe, ELPV, over the 4 drawn test splits of
# docs/methods_probe.sh (run that first: it caches the features and trains the logistic probes).
# probe.head: regression fits one ridge output on the defect probability (0, 1/3, 2/3, 1) and rounds it to
# the nearest grade; its binary answer is the same output at 0.5 (predicted grade >= 2), read here from
# the 4-grade runs' test predictions and paired, split by split, with the logistic probe on the binary label.
#   bash docs/methods_regression.sh          # about 2 minutes once the features are cached
set -euo pipefail
BIN=.venv/bin
SEEDS=0,1,2,3
VARY=seed,data.split_seed,data.test_split_seed
for member in elpv_grade_regression elpv_grade_lite2_regression; do
  $BIN/fgvc repeat configs/$member.yaml --seeds $SEEDS --vary $VARY --out runs/$member-splits > /dev/null
done
$BIN/fgvc compare runs/elpv_grade-splits runs/elpv_grade_regression-splits --metric top1 --metric f1_macro \
    --metric auroc_macro
$BIN/fgvc compare runs/elpv_grade_lite2-splits runs/elpv_grade_lite2_regression-splits --metric top1
$BIN/python - "$SEEDS" <<'PY'
import csv, json, sys
from pathlib import Path
from fgvc.evaluate.stats import compare_values, describe
seeds = [int(s) for s in sys.argv[1].split(",")]
def binary_from_grades(group, seed):  # defective = predicted grade >= 2 (defect probability >= 0.5)
    rows = list(csv.DictReader(open(Path(group) / f"seed-{seed}" / "predictions_test.csv")))
    return sum((int(r["target"]) >= 2) == (int(r["predicted"]) >= 2) for r in rows) / len(rows)
def binary_probe(group, seed):
    return json.loads((Path(group) / f"seed-{seed}" / "metrics.json").read_text())["test"]["top1"]
reference = {s: binary_probe("runs/elpv_binary-splits", s) for s in seeds}
for name, group in (("Lite0 regression", "runs/elpv_grade_regression-splits"),
                    ("Lite2 regression", "runs/elpv_grade_lite2_regression-splits"),
                    ("Lite0 logistic, 4 grades", "runs/elpv_grade-splits")):
    values = {s: binary_from_grades(group, s) for s in seeds}
    d, c = describe(list(values.values()), metric="top1"), compare_values("top1", reference, values)
    print(f"binary from {name:26s} {d.mean:.2%} [{d.ci_low:.2%}, {d.ci_high:.2%}]; minus the binary logistic probe "
          f"({c.mean_a:.2%}): {c.diff * 100:+.2f} points [{c.ci_low * 100:+.2f}, {c.ci_high * 100:+.2f}], p = {c.p_value:.2f}")
PY

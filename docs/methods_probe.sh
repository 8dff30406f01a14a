#!/usr/bin/env bash
# Second-order pooling on the cached-feature probe, ELPV, over 4 drawn test splits: the recipe with
# average pooling (configs/elpv_TASK.yaml) against iSQRT-COV pooling of a 96-channel projection
# (configs/elpv_TASK_cov.yaml), the same 4 seeds each drawing train/val and test split, paired by split.
#   bash docs/methods_probe.sh binary      # or: grade   (first time about 15 minutes on 2 cores; resumable)
set -euo pipefail
TASK=${1:-binary}
BIN=.venv/bin
SEEDS=0,1,2,3
VARY=seed,data.split_seed,data.test_split_seed
for member in elpv_${TASK} elpv_${TASK}_cov; do
  $BIN/fgvc repeat configs/$member.yaml --seeds $SEEDS --vary $VARY --out runs/$member-splits > /dev/null
done
$BIN/fgvc compare runs/elpv_${TASK}-splits runs/elpv_${TASK}_cov-splits --metric top1 --metric f1_macro \
    --metric auroc_macro --out runs/methods_probe_${TASK}.md

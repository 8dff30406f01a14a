#!/usr/bin/env bash
# Here, after `bash bench/device_checks.sh elpv` ran on a device machine: unpack its run folders (no
# checkpoints) and gather each task's three one-member groups into one group folder, then let
# `fgvc repeat` summarise it (finished members are reused, nothing trains) and compare it, paired by
# drawn test split, with the frozen-feature probe's group on the same splits.
#   bash bench/device_merge.sh /work/.device/.../elpv_finetune_runs.tgz
set -eu
archive=${1:?the elpv_finetune_runs.tgz the device run wrote}
fgvc=${FGVC:-.venv/bin/fgvc}
tar -xzf "$archive"   # runs/device/...
for task in binary grade; do
  group=runs/elpv_${task}_finetune_300-splits
  mkdir -p "$group"
  for seed in 0 1 2; do
    part=runs/device/elpv_${task}_finetune_300-p$seed
    if [ -f "$part/seed-$seed/metrics.json" ] && [ ! -e "$group/seed-$seed" ]; then
      mv "$part/seed-$seed" "$group/seed-$seed"
    fi
  done
  "$fgvc" repeat "configs/elpv_${task}_finetune_300.yaml" --seeds 0,1,2 \
      --vary seed,data.split_seed,data.test_split_seed --set data.num_workers=2 --out "$group"
  probe=runs/elpv_${task}-splits
  if [ -d "$probe" ]; then "$fgvc" compare "$probe" "$group" --metric top1; fi
done

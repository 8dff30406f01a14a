#!/usr/bin/env bash
# The ELPV binary goal's CPU-night levers, over 3 drawn test splits (seeds 0-2, each also drawing the
# train/val and the test split), paired by split with the probe groups of docs/methods_probe.sh (run
# `bash docs/methods_probe.sh binary` first):
# 1. the full fine-tune of Lite0 at 300 px (configs/elpv_binary_finetune_300_cpu.yaml: 8 epochs, about
#    45 minutes a split on 2 idle cores; a killed run goes on from its last checkpoint) against the
#    Lite0 logistic probe;
# 2. the fine-tune added to the four-probe ensemble (a method of another kind: the ensemble's
#    disagreement says how differently it errs) against the four-probe ensemble. The ensembles average
#    probabilities without test-time views (the probes were trained and evaluated without them).
#   bash docs/methods_finetune.sh
set -euo pipefail
BIN=.venv/bin
SEEDS="0 1 2"
FINETUNE=runs/elpv_binary_finetune_300_cpu-splits
nice -n 19 $BIN/fgvc repeat configs/elpv_binary_finetune_300_cpu.yaml --seeds 0,1,2 \
    --vary seed,data.split_seed,data.test_split_seed --out $FINETUNE > /dev/null
$BIN/fgvc compare runs/elpv_binary-splits $FINETUNE --metric top1 --metric f1_macro --metric auroc_macro \
    --out runs/methods_finetune_binary.md
for s in $SEEDS; do
  out=runs/elpv_binary_five-ensemble/seed-$s
  [ -f $out/ensemble.json ] || $BIN/fgvc ensemble runs/elpv_binary{,_cov,_lite2,_lite2_cov}-splits/seed-$s \
      $FINETUNE/seed-$s --out $out > /dev/null
done
$BIN/python - $SEEDS <<'PY'
import json, sys
from pathlib import Path
from fgvc.evaluate.stats import compare_values, describe, verdict
seeds = [int(s) for s in sys.argv[1:]]
found = {name: {s: json.loads(Path(f"runs/elpv_binary_{name}-ensemble/seed-{s}/ensemble.json").read_text())
                for s in seeds} for name in ("four", "five")}
for name, by_seed in found.items():
    d = describe([e["ensemble"]["top1"] for e in by_seed.values()], metric="top1")
    disagreement = sum(e["diversity"]["disagreement"] for e in by_seed.values()) / len(by_seed)
    print(f"ensemble {name}: top1 {d.mean:.4f} [{d.ci_low:.4f}, {d.ci_high:.4f}] over {len(seeds)} test splits, "
          f"mean disagreement {disagreement:.3f}")
for metric in ("top1", "f1_macro", "auroc_macro"):
    a = {s: e["ensemble"][metric] for s, e in found["four"].items()}
    b = {s: e["ensemble"][metric] for s, e in found["five"].items()}
    print(verdict(compare_values(metric, a, b), "the four probes", "the four probes + the fine-tune"))
PY

#!/usr/bin/env bash
# The demo recipe over ELPV test splits: the fixed split (runs/demo, from `make demo`) and three more
# drawn with data.test_split_seed. Prints mean and 95% CI of test top-1, macro F1 and AUROC over them.
# Run from the repository root after `make demo`: bash docs/demo_splits.sh   (under a minute a split:
# the probe reuses the per-image features the demo computed)
set -euo pipefail
BIN=.venv/bin
for n in 1 2 3; do
  [ -f runs/demo-split-$n/metrics.json ] || $BIN/fgvc train configs/demo.yaml --set data.test_split_seed=$n \
      --set output.name=demo-split-$n --no-progress
done
$BIN/python - <<'PY'
import json
from pathlib import Path
from fgvc.evaluate.stats import describe
runs = [Path("runs/demo")] + [Path(f"runs/demo-split-{n}") for n in (1, 2, 3)]
tests = [json.loads((run / "metrics.json").read_text())["test"] for run in runs]
for metric in ("top1", "f1_macro", "auroc_macro"):
    values = [t[metric] for t in tests]
    d = describe(values, metric=metric)
    print(f"{metric}: " + ", ".join(f"{v:.4f}" for v in values)
          + f"; mean {d.mean:.4f}, 95% CI [{d.ci_low:.4f}, {d.ci_high:.4f}] ({d.method}, {d.n} test splits)")
PY

#!/usr/bin/env bash
# The GPU checks no CPU can make, for a lent device machine (one H200: its own python3 with torch,
# timm and Lightning; nothing can be downloaded there). Two parts, because the device tool carries at
# most 64 MiB per call and the ELPV cells are 92 MB of PNG: the cells travel as lossless WebP in two
# halves (.gpu/imgA, .gpu/imgB; see bench/device_stage.py), are decoded back to PNG there and checked
# pixel-equal to the packaged files' pixels by their SHA-256.
#
#   bash bench/device_checks.sh benches   # half A staged (half B's names filled with A's cells: speed
#                                         #   only), then train_step (fgvc vs timm's loop) and jpeg_decode
#   bash bench/device_checks.sh elpv      # half B staged (all 2,624 real cells), then the 300 px full
#                                         #   fine-tunes, binary and 4 grades, 3 drawn splits each, the six
#                                         #   runs side by side on the GPU (bf16-mixed), one group folder each
# Results come back in $OUT; merge them here with bench/device_merge.sh.
set -u
OUT=${OUT:-/tmp/device-out}
mkdir -p "$OUT"
export PYTHONPATH=$PWD/src:$PWD/.gpu/site:$PWD/.gpu/pkgs PYTHONUNBUFFERED=1 MPLBACKEND=Agg
FGVC=(python3 -c 'import sys; from fgvc.cli import main; sys.argv[0] = "fgvc"; main()')
part=${1:?say benches or elpv}
log=$OUT/$part.log
exec > >(tee -a "$log") 2>&1

if [ ! -d .gpu/site/pydantic ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target .gpu/site .gpu/whl/*.whl || exit 1
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c 'import torch, torchvision, timm, lightning, pydantic; print("torch", torch.__version__, "torchvision", torchvision.__version__, "timm", timm.__version__, "lightning", lightning.__version__, "cuda", torch.cuda.is_available())'

if [ "$part" = benches ]; then
  python3 bench/device_stage.py unpack .gpu/imgA --fill || exit 1
  SECONDS=0
  timeout 120 python3 bench/train_step.py --device cuda --model resnet50 --size 224 --batch 128 --steps 15 --warmup 3 \
      --workers 12 --repeats 2 --decoded
  echo "train_step: ${SECONDS}s"; SECONDS=0
  timeout 70 python3 bench/jpeg_decode.py --device cuda --workers 14 --batch 256 --images 2048 --sizes 224 --repeats 2 \
      --model resnet50
  echo "jpeg_decode: ${SECONDS}s"
elif [ "$part" = elpv ]; then
  python3 bench/device_stage.py unpack .gpu/imgB || exit 1
  deadline=${DEADLINE:-450}
  mkdir -p runs/device
  SECONDS=0
  pids=()
  for task in binary grade; do
    for seed in 0 1 2; do
      # one group folder per process: two repeats in one folder would wait for each other's members
      timeout "$deadline" "${FGVC[@]}" repeat "configs/elpv_${task}_finetune_300.yaml" --seeds "$seed," --vary seed,data.split_seed,data.test_split_seed \
        --set data.num_workers=2 ${EXTRA_SETS:-} --out "runs/device/elpv_${task}_finetune_300-p$seed" > "runs/device/${task}_$seed.log" 2>&1 &
      pids+=($!)
    done
  done
  wait "${pids[@]}"  # not a bare wait: it would wait for the tee above too
  echo "six fine-tunes: ${SECONDS}s"
  tail -n 4 runs/device/*.log
  # everything but the checkpoints comes back (the $OUT limit is 16 MiB a file)
  tar -czf "$OUT/elpv_finetune_runs.tgz" --exclude='*.ckpt' --exclude='*.safetensors' runs/device
  ls -la "$OUT"
fi

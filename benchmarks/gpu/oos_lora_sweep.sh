#!/usr/bin/env bash
# LoRA meta-training with the out-of-scope ranking term on a GPU machine: several
# configurations side by side on one GPU, each time-boxed, selected on CLINC150 `valid` plus its
# `oos_valid` + `oos_train` texts (never the test texts). Run from the project root on the device
# machine after `source .devkit/device-env.sh`; writes $OUT/sweep.tgz (checkpoints, metrics, logs).
# The checkpoints record the fp16 encoder copy's sha256: tie them to the packaged encoder with
#   fewshot rebase-checkpoint DIR --trained-on .devkit/minilm
# and evaluate them on the CPU with benchmarks/oos_scores.py.
#   [TRAIN_DATA="clinc150 banking77"] bash benchmarks/gpu/oos_lora_sweep.sh MINUTES NAME:"EXTRA ARGS" [NAME:"EXTRA ARGS" ...]
set -u
MINUTES=$1; shift
DATA=.devkit/data
TRAIN_DATA=${TRAIN_DATA:-"clinc150 banking77"}   # e.g. TRAIN_DATA=banking77 to hold CLINC150 out
RUNS=/tmp/sweep
mkdir -p "$RUNS"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$RUNS/gpu.txt" 2>&1
python3 -c "import torch, transformers, sys; print(sys.version.split()[0], torch.__version__, transformers.__version__)" >> "$RUNS/gpu.txt"
git rev-parse HEAD >> "$RUNS/gpu.txt" 2>/dev/null
# lower-layer token states once, shared by every run (the cache is keyed by encoder and layer count)
for spec in "$@"; do
  name=${spec%%:*}; extra=${spec#*:}
  # shellcheck disable=SC2086
  ( timeout $(( ${MINUTES%.*} * 60 + 150 )) python3 -m app.cli meta-train \
      $(for d in $TRAIN_DATA; do printf -- "--train-data $DATA/%s " "$d"; done) --algorithm protonet \
      --encoder-dir .devkit/minilm --cache-dir /tmp/cache --out "$RUNS/$name" --no-progress \
      --ways 20 --shots 5 10 --queries 5 --episode-mode uniform --exclude-fixed-splits \
      --select-on accuracy+oos --val-every 100 --val-episodes 4 --early-stopping-patience 8 \
      --episodes 100000 --max-minutes "$MINUTES" --seed 0 --no-calibrate $extra > "$RUNS/$name.log" 2>&1
    echo "exit $?" >> "$RUNS/$name.log" ) &
  sleep 10   # the first run fills the token-state cache (seconds on a GPU); later ones start after it
done
wait
nvidia-smi >> "$RUNS/gpu.txt" 2>&1
tar -czf "$OUT/sweep.tgz" -C /tmp sweep
tail -n 4 "$RUNS"/*.log

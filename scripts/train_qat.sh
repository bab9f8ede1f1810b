#!/usr/bin/env bash
# Quantization-aware fine-tuning of the shipped fp32 checkpoints into <model>-qat.safetensors.
# Usage: bash scripts/train_qat.sh [model ...]   (default: lighter fire light sid)
# STEPS (default 200) and LR (default 1e-5, SID's final lr) override the recipe. Before the
# first step the activation ranges are set by the static-int8 calibration (32 whole synth-train
# images, histogram observers) and frozen, so QAT starts exactly at static int8 and fine-tunes
# the weights to those ranges (lowbench.quant.calibrate_qat).
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS="${STEPS:-200}"
LR="${LR:-1e-5}"
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(lighter fire light sid)
for m in "${models[@]}"; do
    python3 -m lowbench train --model "$m" --task synth-train --qat \
        --init "lowbench/checkpoints/$m.safetensors" --steps "$STEPS" --lr "$LR" \
        --lr-drop 1.0 --batch-size 4 --patch 256 --threads 1 --seed 0 --val-every 100 \
        --no-progress --out "lowbench/checkpoints/$m-qat.safetensors"
done

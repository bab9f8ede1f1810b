#!/usr/bin/env bash
# Quantization-aware fine-tuning of the shipped fp32 checkpoints into <model>-qat.safetensors.
# Usage: bash scripts/train_qat.sh [model ...]   (default: lighter fire light sid)
# Before the first step the activation ranges are set by the static-int8 calibration (32 whole
# synth-train images, histogram observers) and frozen, so QAT starts exactly at static int8
# (lowbench.quant.qat.calibrate_qat); the fake-quant model rounds and clamps like the int8 model it
# converts to (lowbench/quant/qat.py, lowbench/quant/ties.py). The weights are then
# distilled: L1 to the frozen fp32 model's output (DISTILL=1; 0 trains on the ground truth).
# STEPS (600), LR (1e-4), LR_DROP (0.8: lr/10 for the last 20 %) and DISTILL override the recipe;
# OUT_DIR (lowbench/checkpoints) is where <model>-qat.safetensors is written.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS="${STEPS:-600}"
LR="${LR:-1e-4}"
LR_DROP="${LR_DROP:-0.8}"
DISTILL="${DISTILL:-1.0}"
OUT_DIR="${OUT_DIR:-lowbench/checkpoints}"
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(lighter fire light sid)
for m in "${models[@]}"; do
    python3 -m lowbench train --model "$m" --task synth-train --qat \
        --init "lowbench/checkpoints/$m.safetensors" --steps "$STEPS" --lr "$LR" \
        --lr-drop "$LR_DROP" --distill "$DISTILL" --batch-size 4 --patch 256 --threads 1 \
        --seed 0 --val-every 100 --no-progress --out "$OUT_DIR/$m-qat.safetensors"
done
# Shipped QAT files store their fake-quantized weights as int8 codes (bit-identical int8 model,
# less than half the size): pack what was just trained when writing into the package.
if [ "$OUT_DIR" = "lowbench/checkpoints" ]; then
    python3 scripts/pack_qat_checkpoints.py --models "${models[@]}"
fi

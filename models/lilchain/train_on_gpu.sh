#!/usr/bin/env bash
# File: models/lilchain/train_on_gpu.sh
# Trains LilChain on one GPU and writes the HuggingFace model, logs and metrics under
# $OUT/lilchain (or --out DIR). Needs python3 with torch, transformers, tokenizers and
# safetensors, and the English corpus made beforehand by prepare_english.py (the GPU machine
# has neither Debian's bible-kjv nor npm; carry the file):
#   .venv/bin/python models/lilchain/prepare_english.py        # -> models/cache/lilchain/english.txt.gz
#   models/lilchain/train_on_gpu.sh [--train-seconds 330] [--tiny] [train.py flags...]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
python="${PYTHON:-python3}"
english="${LILCHAIN_ENGLISH:-$root/models/cache/lilchain/english.txt.gz}"
out="${OUT:-$root/models/cache/lilchain/run}/lilchain"
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
if [ ! -s "$english" ]; then
  echo "train_on_gpu.sh: $english is missing; run models/lilchain/prepare_english.py first" >&2
  exit 2
fi
mkdir -p "$out"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
"$python" -c 'import torch, transformers, tokenizers, safetensors' 2>/dev/null || {
  echo "train_on_gpu.sh: $python lacks torch/transformers/tokenizers/safetensors" >&2; exit 2; }
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
"$python" "$here/train.py" --out "$out" --english "$english" ${args[@]+"${args[@]}"} 2>&1 | tee "$out/train.log"

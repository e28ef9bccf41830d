#!/usr/bin/env bash
# File: models/lilchain/train_on_gpu.sh
# Trains LilChain on one GPU and writes the HuggingFace model, logs and metrics under
# $OUT/lilchain (or --out DIR). Needs python3 with torch, transformers, tokenizers and
# safetensors, and the English corpus made beforehand by prepare_english.py (the GPU machine
# has neither Debian's bible-kjv nor npm; carry the file):
#   .venv/bin/python models/lilchain/prepare_english.py        # -> models/cache/lilchain/english.txt.gz
#   models/lilchain/train_on_gpu.sh [--train-seconds 400] [--tiny] [train.py flags...]
#   models/lilchain/train_on_gpu.sh --pack DIR [train.py flags...]
# --pack DIR: train into a work directory (--out, default $TMPDIR/lilchain-work), then put under DIR only what a size-limited file
# transfer can bring back (at most 6 files, each <= 15 MiB): metrics.json, train.log,
# lilchain-small.tar.gz (hf/ without the weights, MODEL_CARD.md, eval_outputs.jsonl) and
# model.safetensors.part-aa, -ab (the weights split at 15 MiB). Join them (see README.md):
#   models/lilchain/join_parts.sh DIR models/cache/lilchain   # -> models/cache/lilchain/hf/
# --wall-seconds N (default 575): train.py is stopped after N seconds whatever happens, so
# the packing step still runs inside a 600-second device call.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
python="${PYTHON:-python3}"
english="${LILCHAIN_ENGLISH:-$root/models/cache/lilchain/english.txt.gz}"
out="${OUT:-$root/models/cache/lilchain/run}/lilchain"
pack=""
out_given=""
wall=575
part_size="${LILCHAIN_PART_SIZE:-15M}"  # split's -b; the transfer limit is 16 MiB a file
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; out_given=1; shift 2 ;;
    --pack) pack="$2"; shift 2 ;;
    --wall-seconds) wall="$2"; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
if [ ! -s "$english" ]; then
  echo "train_on_gpu.sh: $english is missing; run models/lilchain/prepare_english.py first" >&2
  exit 2
fi
if [ -n "$pack" ] && [ -z "$out_given" ]; then
  out="${TMPDIR:-/tmp}/lilchain-work/lilchain"  # the full run; only the pack goes to $pack
  rm -rf "$out"
fi
mkdir -p "$out"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
"$python" -c 'import torch, transformers, tokenizers, safetensors' 2>/dev/null || {
  echo "train_on_gpu.sh: $python lacks torch/transformers/tokenizers/safetensors" >&2; exit 2; }
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
rc=0
timeout --signal=INT --kill-after=10 "$wall" \
  "$python" "$here/train.py" --out "$out" --english "$english" ${args[@]+"${args[@]}"} 2>&1 \
  | tee "$out/train.log" || rc=$?
[ "$rc" -eq 0 ] || echo "train_on_gpu.sh: train.py exited with $rc (124: stopped at --wall-seconds $wall)" | tee -a "$out/train.log"
if [ -n "$pack" ]; then
  mkdir -p "$pack"
  cp "$out/train.log" "$pack/"
  [ -f "$out/metrics.json" ] && cp "$out/metrics.json" "$pack/"
  if [ -f "$out/hf/model.safetensors" ]; then
    (cd "$out/hf" && sha256sum model.safetensors > model.safetensors.sha256)
    rm -f "$pack"/model.safetensors.part-*
    split -b "$part_size" -a 2 "$out/hf/model.safetensors" "$pack/model.safetensors.part-"
    small=(hf/config.json hf/generation_config.json hf/tokenizer.json hf/tokenizer_config.json
           hf/model.safetensors.sha256 hf/MODEL_CARD.md eval_outputs.jsonl)
    present=()
    for f in "${small[@]}"; do [ -f "$out/$f" ] && present+=("$f"); done
    tar -czf "$pack/lilchain-small.tar.gz" -C "$out" "${present[@]}"
  fi
  ls -l "$pack"
fi
exit "$rc"

#!/bin/bash
# File: tests/gpu/run_on_gpu.sh
# One device-machine run: the GPU tests, the factory test on a random SmolLM2-shaped
# checkpoint, the batch-1 decode benchmark on a random Llama-3-8B-shaped checkpoint, and the
# PyTorch ceilings + HF transformers peer (bench/gpu_peer.py). Binaries come from .carry/
# (built on the dev machine: bin/ + the non-system shared libraries in lib/). Logs to $OUT.
set -o pipefail
root=$PWD
c=$root/.carry
out=${OUT:-/tmp/out}
mkdir -p "$out"
cublas=$(find /opt /usr /usr/local -name 'libcublas.so.13*' 2>/dev/null | head -1)
export LD_LIBRARY_PATH=$c/lib:$(dirname "${cublas:-/x/x}"):${LD_LIBRARY_PATH:-}
export LILSERVE_ROOT=$root LILSERVE_CUDA_MODULE=$c/bin/lilserve_cuda.so
echo "cublas: $cublas" | tee "$out/summary.log"
nvidia-smi -L | tee -a "$out/summary.log"
for t in gpu_ops_test gpu_attention_test gpu_backend_test; do
  timeout 240 "$c/bin/$t" > "$out/$t.log" 2>&1; echo "$t rc=$?" | tee -a "$out/summary.log"
  grep -E "^\[  (FAILED|PASSED|SKIPPED) |Failure|error" "$out/$t.log" | head -30 | tee -a "$out/summary.log"
done
"$c/bin/lilctl" make-random-model --like smollm2-135m --out /tmp/smol > /dev/null 2>&1
LILSERVE_TEST_MODEL=/tmp/smol LILSERVE_GREEDY_MIN_PERCENT=${GREEDY_MIN:-95} timeout 240 "$c/bin/backend_factory_test" > "$out/backend_factory_test.log" 2>&1
echo "backend_factory_test rc=$?" | tee -a "$out/summary.log"
grep -E "^\[  (FAILED|PASSED) |Failure|prompt|tokens" "$out/backend_factory_test.log" | head -30 | tee -a "$out/summary.log"
if [ "${SKIP_8B:-0}" = 0 ]; then
  (time timeout 150 "$c/bin/lilctl" make-random-model --like llama3-8b --out /tmp/l8) > "$out/make8b.log" 2>&1
  tail -3 "$out/make8b.log" | tee -a "$out/summary.log"
  [ "${SKIP_PEER:-0}" = 1 ] || PYTHONUNBUFFERED=1 timeout 200 python3 "$root/bench/gpu_peer.py" --model /tmp/l8 --context 1024 --steps 32 2>&1 | tee "$out/peer.log" | tail -12 | tee -a "$out/summary.log"
  hbm=$(grep -oP 'HBM_TBS=\K[0-9.]+' "$out/peer.log" 2>/dev/null || echo "${HBM_TBS:-4.5}")
  for b in 1 8; do
    timeout 120 "$c/bin/gpu_decode_bench" --model /tmp/l8 --context 1024 --steps 32 --batch $b --hbm-tbs "$hbm" --kv-mib 8192
  done 2>&1 | tee "$out/decode_bench.log" | tail -5 | tee -a "$out/summary.log"
fi

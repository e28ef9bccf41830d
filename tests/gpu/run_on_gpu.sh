#!/bin/bash
# File: tests/gpu/run_on_gpu.sh
# One device-machine run (see docs/GPU.md): unpack the binaries packed by tools/gpu_pack.sh
# (.carry/pack.tar.xz), then the stages named in $STAGES (default: all):
#   tests   the GPU tests, and greedy CUDA-vs-CPU continuations on a random SmolLM2-shaped model
#   smol    greedy continuations on the real default model, reassembled from .gguf-{a,b,c}/part
#   parity  full-model logits: CUDA vs CPU engine vs transformers (tests/gpu/gpu_logit_parity.py)
#   peer    PyTorch ceilings (HBM read, bf16 GEMM), SDPA decode attention, HF transformers decode
#   attn    bench/gpu_attention_bench (dense / Quest / sink+window decode attention)
#   gemv    bench/gpu_gemv_bench (every GEMV variant and cuBLAS on the 8B matrices and on one
#           step's 128 GEMVs), then the 8B batch-1 decode with each variant ($LILSERVE_GEMV_VARIANT,
#           and "auto": timed per shape at the first step, the choices logged)
#   quest   goal 4: the Quest tests of gpu_attention_test / gpu_backend_test, gpu_attention_bench
#           --sparse twice (its tables, the prefetch sweep), the 8B step at 16k: Quest batch 16 / 4 / 1
#           and dense batch 16
#   decode  bench/gpu_decode_bench on a random Llama-3-8B-shaped checkpoint (+ A/B switches)
#   flash   the 8B prefill (1k x 8, 4k x 1, 8k x 1 prompts: gpu_decode_bench's prefill column)
#           without and with LILSERVE_FLASH_PREFILL=1 (the tensor-core prefill attention)
#   fused   the 8B decode at batch 1 and 4 (contexts 1k, 8k): LILSERVE_FUSED_NORM=0 (no fused
#           one-token path), LILSERVE_FUSED_ROPE=0 (no RoPE epilogue) and the defaults, in one
#           run; then the batch-1 kernel profile at the defaults when the pack has
#           libkernel_profiler.so
#   prof    per-kernel GPU time of 8B decode (batch 1, 64; TP=2) through CUPTI when the pack has
#           libkernel_profiler.so (bench/kernel_profiler.cc), else nsys when installed
#   tp      tensor parallelism (needs >= 2 GPUs): gpu_tp_test, the NCCL all-reduce bench, the
#           8B decode at TP=1/2(/4) in one run, greedy TP=N vs TP=1 through lilctl
#   scale   (>= 4 GPUs) 8B decode at TP=1/2/4(/8), TP=4(/8) logits vs TP=1, 70B decode at TP=4(/8)
#   tpnum   8B logits: CUDA TP=1/2(/4) against the fp32 CPU engine and against each other
#   e2e     the gRPC client test (tests/e2e/server_e2e_test.py) against the daemon on the GPU
#           ($E2E_FLAGS, default "--device cuda"; "--device cuda --tensor-parallel 3" on >= 3 GPUs:
#           the default model's 9 / 3 heads split in 3, not 2) on the default model; needs the
#           wheels in .whl (grpcio, grpcio-tools, protobuf, gguf; health.proto) and all three model
#           parts. E2E_TP=2 (or 4) then runs it again with --tensor-parallel $E2E_TP on the default
#           model padded to 12 / 4 heads (tools/py/pad_heads.py; same logits, splits in 2 and 4)
#   hfcompile  (last) HF transformers decode at batch 1 / 1k: eager, and static cache + torch.compile
#   lilgrid the LilChain evaluation grid (models/lilchain/eval_grid.sh, docs/LIL.md) on the GPU
#           daemon: the model in $LILCHAIN_HF (default /tmp/lilchain-work/lilchain/hf, where a
#           train_on_gpu.sh --pack call just before on the same warm machine leaves it), 256
#           held-out problems, dense / sink / quest / h2o x budgets 64-512 x shadow / enforce /
#           conclude; results under $OUT/lilgrid (each mode's directory as soon as it is done)
# Logs and tables go to $OUT; summary.log collects the lines that matter.
set -o pipefail
root=$PWD
out=${OUT:-/tmp/out}
mkdir -p "$out"
stages=" ${STAGES:-tests smol peer attn decode prof} "
has() { [[ "$stages" == *" $1 "* ]]; }
c=/tmp/carry
if [ -f "$root/.carry/pack.tar.xz" ] && [ "${REUSE_PACK:-0}" != 1 -o ! -x "$c/bin/lilctl" ]; then
  rm -rf "$c" && mkdir -p "$c" && tar -C "$c" -xJf "$root/.carry/pack.tar.xz" || exit 1
fi
[ -x "$c/bin/lilctl" ] || { echo "no binaries: carry .carry/pack.tar.xz (tools/gpu_pack.sh)"; exit 1; }
# The default model travels in parts (64 MiB per call): each call copies its parts to /tmp,
# which lives as long as the machine stays warm.
mkdir -p /tmp/parts
for x in a b c; do [ -s "$root/.gguf-$x/part" ] && cp "$root/.gguf-$x/part" /tmp/parts/$x; done
if [ ! -s /tmp/default.gguf ] && [ -s /tmp/parts/a ] && [ -s /tmp/parts/b ] && [ -s /tmp/parts/c ]; then
  cat /tmp/parts/a /tmp/parts/b /tmp/parts/c > /tmp/default.gguf
fi
cublas=$(find /opt /usr /usr/local -name 'libcublas.so.13*' 2>/dev/null | head -1)
export LD_LIBRARY_PATH=$c/lib:$(dirname "${cublas:-/x/x}"):${LD_LIBRARY_PATH:-}
export LILSERVE_ROOT=$root LILSERVE_CUDA_MODULE=$c/bin/lilserve_cuda.so
log() { tee -a "$out/summary.log"; }
echo "cublas: $cublas" | log
nvidia-smi -L | log
if has tests; then
  for t in gpu_ops_test gpu_gemm_test gpu_attention_test gpu_backend_test; do
    timeout 240 "$c/bin/$t" > "$out/$t.log" 2>&1; echo "$t rc=$?" | log
    grep -E "^\[  (FAILED|PASSED|SKIPPED) |Failure|error" "$out/$t.log" | head -30 | log
  done
  "$c/bin/lilctl" make-random-model --like smollm2-135m --out /tmp/smol > /dev/null 2>&1
  LILSERVE_TEST_MODEL=/tmp/smol LILSERVE_GREEDY_MIN_PERCENT=${GREEDY_MIN:-50} timeout 240 "$c/bin/backend_factory_test" > "$out/backend_factory_random.log" 2>&1
  echo "backend_factory_test (random smollm2) rc=$?" | log
  grep -E "^\[  (FAILED|PASSED) |Failure|greedy|agree" "$out/backend_factory_random.log" | head -20 | log
fi
if has smol; then
  if [ -s /tmp/default.gguf ]; then
    echo "default model: $(sha256sum /tmp/default.gguf | cut -c1-16) (expect ${GGUF_SHA:-?})" | log
    LILSERVE_TEST_MODEL=/tmp/default.gguf LILSERVE_GREEDY_MIN_PERCENT=95 timeout 300 "$c/bin/backend_factory_test" > "$out/backend_factory_default.log" 2>&1
    echo "backend_factory_test (default model, >= 95% greedy) rc=$?" | log
    grep -E "^\[  (FAILED|PASSED) |Failure|greedy|agree|^prompt" "$out/backend_factory_default.log" | head -24 | log
  else
    echo "smol: model parts present: $(ls /tmp/parts | tr '\n' ' ')" | log
  fi
fi
if has parity; then
  [ -s /tmp/default.gguf ] && export DEFAULT_GGUF=/tmp/default.gguf
  LILCTL=$c/bin/lilctl timeout 400 python3 "$root/tests/gpu/gpu_logit_parity.py" 2>&1 | grep -v Warning | tee "$out/logit_parity.log" | log
fi
need8b() { [ -d /tmp/l8 ] || (time timeout 200 "$c/bin/lilctl" make-random-model --like llama3-8b --out /tmp/l8) > "$out/make8b.log" 2>&1; }
hbm=${HBM_TBS:-4.5}
gemm=0
if has peer; then
  need8b
  PYTHONUNBUFFERED=1 timeout 240 python3 "$root/bench/gpu_peer.py" --model /tmp/l8 --context 1024 --steps 32 --attention 2>&1 | tee "$out/peer.log" | log
  hbm=$(grep -oP 'HBM_TBS=\K[0-9.]+' "$out/peer.log" || echo "$hbm")
  gemm=$(grep -oP 'GEMM_TFLOPS=\K[0-9.]+' "$out/peer.log" || echo 0)
fi
if has attn; then
  timeout 200 "$c/bin/gpu_attention_bench" 2>&1 | tee "$out/attention_bench.log" | log
fi
if has quest; then  # goal 4 in one go: Quest's tests, its kernel tables twice, the 8B step at 16k
  for t in gpu_attention_test gpu_backend_test; do
    timeout 200 "$c/bin/$t" --gtest_filter='*Quest*' > "$out/quest_$t.log" 2>&1
    echo "$t (Quest) rc=$? $(grep -E 'PASSED|FAILED' "$out/quest_$t.log" | head -3 | tr '\n' ' ')" | log
  done
  for r in 1 2; do
    timeout 100 "$c/bin/gpu_attention_bench" --sparse > "$out/quest_bench$r.log" 2>&1
    grep -E '^\| (1|16) \| (dense|sink\+window|quest)' "$out/quest_bench$r.log" | log
  done
  need8b
  for args in "--batch 16 --sparse quest" "--batch 16" "--batch 4 --sparse quest" "--batch 1 --sparse quest"; do
    echo "8B 16k $args: $(timeout 120 "$c/bin/gpu_decode_bench" --model /tmp/l8 --hbm-tbs 4.4 --steps 32 --context 16384 \
      --kv-mib 40000 $args 2>&1 | grep '^| [0-9]' | tail -1)" | log
  done
fi
if has decode; then
  need8b
  d="$c/bin/gpu_decode_bench --model /tmp/l8 --hbm-tbs $hbm --gemm-tflops $gemm --steps 32"
  { timeout 200 $d --context 1024 --batch 1,8,32,128 --kv-mib 40000
    timeout 150 $d --context 8192 --batch 1,8,32 --kv-mib 40000
    timeout 90 $d --context 4096 --batch 1 --kv-mib 8000
    echo "A/B: no CUDA graphs (LILSERVE_CUDA_GRAPHS=0)"
    LILSERVE_CUDA_GRAPHS=0 timeout 90 $d --context 1024 --batch 1,32 --kv-mib 8000
    echo "A/B: cuBLAS instead of the GEMV kernel (LILSERVE_GEMV=0)"
    LILSERVE_GEMV=0 timeout 90 $d --context 1024 --batch 1 --kv-mib 8000
    echo "A/B: decode attention on CUDA cores (LILSERVE_TC_DECODE=0)"
    LILSERVE_TC_DECODE=0 timeout 90 $d --context 8192 --batch 1,32 --kv-mib 40000
    echo "A/B: tensor cores at one-token steps too (LILSERVE_TC_MIN_TOKENS=1)"
    LILSERVE_TC_MIN_TOKENS=1 timeout 90 $d --context 8192 --batch 1 --kv-mib 40000
    echo "A/B: no split-KV (LILSERVE_SPLIT_KV=0)"
    LILSERVE_SPLIT_KV=0 timeout 90 $d --context 8192 --batch 1 --kv-mib 8000
    echo "End-to-end decode step, 16k context, batch 4: dense / Quest 2048 / sink+window 2048"
    for m in dense quest sink; do timeout 100 $d --context 16384 --batch 4 --kv-mib 12000 --sparse $m --budget-tokens 2048; done
    echo "A/B: Quest scoring inside the selection CTA (LILSERVE_QUEST_SPLIT=0)"
    LILSERVE_QUEST_SPLIT=0 timeout 100 $d --context 16384 --batch 4 --kv-mib 12000 --sparse quest --budget-tokens 2048
    echo "A/B: Quest metadata in e4m3, rounded outward (LILSERVE_QUEST_FP8=1)"
    LILSERVE_QUEST_FP8=1 timeout 100 $d --context 16384 --batch 4 --kv-mib 12000 --sparse quest --budget-tokens 2048
    echo "A/B: two cp.async stages in the tensor-core decode attention (LILSERVE_TC_STAGES=2)"
    LILSERVE_TC_STAGES=2 timeout 90 $d --context 8192 --batch 32 --kv-mib 40000
  } 2>&1 | tee "$out/decode_bench.log" | grep -vE "^\|---" | log
fi
if has gemv && [ -x "$c/bin/gpu_gemv_bench" ]; then
  timeout 200 "$c/bin/gpu_gemv_bench" 2>&1 | tee "$out/gemv_bench.log" | grep -vE "^\|---" | log
  need8b
  for v in 0 1 2 3 4 5 6 auto; do
    echo "LILSERVE_GEMV_VARIANT=$v" | log
    LILSERVE_GEMV_VARIANT=$v timeout 100 "$c/bin/gpu_decode_bench" --model /tmp/l8 --hbm-tbs $hbm --context 1024 \
      --batch 1,4 --steps 32 --kv-mib 4000 2>&1 | grep -E "^\| [0-9]|GEMV autotune" | cut -c1-240 | log
  done
fi
if has flash; then
  need8b
  for f in 0 1; do
    echo "LILSERVE_FLASH_PREFILL=$f" | log
    for cb in "1024 8" "4096 1" "8192 1"; do
      read -r ctx bs <<< "$cb"
      LILSERVE_FLASH_PREFILL=$f timeout 120 "$c/bin/gpu_decode_bench" --model /tmp/l8 --hbm-tbs $hbm --context $ctx \
        --batch $bs --steps 4 --kv-mib 20000 2>&1 | grep -E "^\| [0-9]|error" | cut -c1-240 | log
    done
  done
fi
if has fused; then
  # The one-token decode path's switches in one run (see the stage list above).
  need8b
  for cfg in "LILSERVE_FUSED_NORM=0" "LILSERVE_FUSED_ROPE=0" "DEFAULT=1"; do
    echo "$cfg" | log
    for ctx in 1024 8192; do
      env $cfg timeout 100 "$c/bin/gpu_decode_bench" --model /tmp/l8 --hbm-tbs $hbm --context $ctx \
        --batch 1,4 --steps 32 --kv-mib 8000 2>&1 | grep -E "^\| [0-9]|error" | cut -c1-240 | log
    done
  done
  if [ -f "$c/bin/libkernel_profiler.so" ]; then
    CUDA_INJECTION64_PATH=$c/bin/libkernel_profiler.so LILSERVE_KPROF_OUT=$out/kprof_fused_b1.md \
      timeout 200 "$c/bin/gpu_decode_bench" --model /tmp/l8 --context 1024 --batch 1 --steps 64 --kv-mib 8000 \
      > "$out/kprof_fused_run.log" 2>&1
    echo "kernel profile, 8B batch 1, defaults rc=$?" | log; head -16 "$out/kprof_fused_b1.md" | cut -c1-200 | log
  fi
fi
if has prof && [ -f "$c/bin/libkernel_profiler.so" ]; then
  # Per-kernel GPU time through CUPTI (bench/kernel_profiler.cc; nsys is not on the image):
  # 8B decode at batch 1 and 64, context 1k, 64 graph-replayed steps each (plus the prefill
  # and warm-up kernels, which have their own names); at TP=2 too when there are 2 GPUs.
  need8b
  for b in 1 64; do
    CUDA_INJECTION64_PATH=$c/bin/libkernel_profiler.so LILSERVE_KPROF_OUT=$out/kprof_b$b.md \
      timeout 200 "$c/bin/gpu_decode_bench" --model /tmp/l8 --context 1024 --batch $b --steps 64 --kv-mib 12000 \
      > "$out/kprof_b${b}_run.log" 2>&1
    echo "kernel profile, 8B batch $b (64 steps) rc=$?" | log; head -16 "$out/kprof_b$b.md" | cut -c1-200 | log
  done
  if [ "$(nvidia-smi -L | wc -l)" -ge 2 ]; then
    CUDA_INJECTION64_PATH=$c/bin/libkernel_profiler.so LILSERVE_KPROF_OUT=$out/kprof_tp2_b1.md \
      timeout 200 "$c/bin/gpu_decode_bench" --model /tmp/l8 --context 1024 --batch 1 --steps 64 --kv-mib 8000 \
      --tensor-parallel 2 > "$out/kprof_tp2_run.log" 2>&1
    echo "kernel profile, 8B TP=2 batch 1 (both GPUs) rc=$?" | log; head -16 "$out/kprof_tp2_b1.md" | cut -c1-200 | log
  fi
elif has prof && command -v nsys > /dev/null; then
  need8b
  timeout 150 nsys profile -o /tmp/decode_prof --force-overwrite true "$c/bin/gpu_decode_bench" --model /tmp/l8 --context 1024 --batch 1 --steps 16 --kv-mib 4000 > "$out/nsys_run.log" 2>&1
  nsys stats --report cuda_gpu_kern_sum --format csv /tmp/decode_prof.nsys-rep 2>/dev/null | head -30 > "$out/nsys_kernels.csv"
  head -16 "$out/nsys_kernels.csv" | cut -c1-220 | log
fi
if has lilgrid; then
  hf=${LILCHAIN_HF:-/tmp/lilchain-work/lilchain/hf}
  if [ -f "$hf/config.json" ]; then
    python3 "$root/models/lilchain/lilchain_data.py" --seed 2 -n 512 --out /tmp/lil_eval.jsonl
    timeout ${LILGRID_SECONDS:-540} "$root/models/lilchain/eval_grid.sh" --model "$hf" --problems /tmp/lil_eval.jsonl \
      --out "$out/lilgrid" --device cuda --limit 256 --max-tokens 2048 --concurrency 256 \
      --lilserve "$c/bin/lilserve" --lilctl "$c/bin/lilctl" > "$out/lilgrid.log" 2>&1
    echo "lilgrid rc=$?" | log; tail -45 "$out/lilgrid.log" | log
  else
    echo "lilgrid: no LilChain model at $hf (train it in the call before, or carry it and set LILCHAIN_HF)" | log
  fi
fi
gpus=$(nvidia-smi -L | wc -l)
if has tp && [ "$gpus" -ge 2 ]; then
  timeout 300 "$c/bin/gpu_tp_test" > "$out/gpu_tp_test.log" 2>&1; echo "gpu_tp_test rc=$?" | log
  grep -E "^\[  (FAILED|PASSED|SKIPPED) |Failure|error|Expected|Which is|actual" "$out/gpu_tp_test.log" | head -40 | log
  LILSERVE_ONESHOT_ALLREDUCE=0 timeout 300 "$c/bin/gpu_tp_test" > "$out/gpu_tp_test_nccl.log" 2>&1
  echo "gpu_tp_test (NCCL only) rc=$?" | log
  grep -E "^\[  (FAILED|PASSED) |Failure" "$out/gpu_tp_test_nccl.log" | head -20 | log
  for n in 2 4 8; do
    [ "$n" -le "$gpus" ] || continue
    for os in 0 1; do
      timeout 120 "$c/bin/nccl_allreduce_bench" --world $n --one-shot $os 2>&1 | tee -a "$out/allreduce_bench.log" | grep -vE "^\|---" | log
    done
    echo "A/B: one-shot without the epoch-in-every-word variant (LILSERVE_ONESHOT_LL=0)" | log
    LILSERVE_ONESHOT_LL=0 timeout 120 "$c/bin/nccl_allreduce_bench" --world $n --one-shot 1 2>&1 | tee -a "$out/allreduce_bench.log" | grep -vE "^\|---" | log
  done
  need8b
  tps=1,2; [ "$gpus" -ge 4 ] && tps=1,2,4; [ "$gpus" -ge 8 ] && tps=1,2,4,8
  timeout 420 "$c/bin/gpu_decode_bench" --model /tmp/l8 --hbm-tbs $hbm --steps 32 --context 1024 --batch 1,64 \
    --kv-mib 12000 --tensor-parallel $tps 2>&1 | tee "$out/tp_decode_bench.log" | grep -vE "^\|---" | log
  echo "A/B: no programmatic dependent launch (LILSERVE_PDL=0)" | log
  LILSERVE_PDL=0 timeout 200 "$c/bin/gpu_decode_bench" --model /tmp/l8 --hbm-tbs $hbm --steps 32 --context 1024 \
    --batch 1,64 --kv-mib 12000 --tensor-parallel 1,2 2>&1 | grep -E "^\| [0-9]" | log
  echo "A/B: no fused one-token path (LILSERVE_FUSED_NORM=0; under TP: the all-reduce not adding into the residual)" | log
  LILSERVE_FUSED_NORM=0 timeout 200 "$c/bin/gpu_decode_bench" --model /tmp/l8 --hbm-tbs $hbm --steps 32 --context 1024 \
    --batch 1,64 --kv-mib 12000 --tensor-parallel 1,2 2>&1 | grep -E "^\| [0-9]" | log
  echo "A/B: one-shot without the epoch-in-every-word variant (LILSERVE_ONESHOT_LL=0)" | log
  LILSERVE_ONESHOT_LL=0 timeout 200 "$c/bin/gpu_decode_bench" --model /tmp/l8 --hbm-tbs $hbm --steps 32 --context 1024 \
    --batch 1,64 --kv-mib 12000 --tensor-parallel 2 2>&1 | grep -E "^\| [0-9]" | log
  echo "A/B: NCCL for every all-reduce (LILSERVE_ONESHOT_ALLREDUCE=0)" | log
  LILSERVE_ONESHOT_ALLREDUCE=0 timeout 200 "$c/bin/gpu_decode_bench" --model /tmp/l8 --hbm-tbs $hbm --steps 32 --context 1024 \
    --batch 1,64 --kv-mib 12000 --tensor-parallel 2 2>&1 | grep -E "^\| [0-9]" | log
  # Greedy continuations: TP=N against TP=1 on a random model with even head counts.
  "$c/bin/lilctl" make-random-model --like smollm2-135m --heads 8 --kv-heads 4 --head-dim 72 --out /tmp/smol8 > /dev/null 2>&1
  for tp in 1 2 4; do
    [ "$tp" -le "$gpus" ] || continue
    timeout 120 "$c/bin/lilctl" generate --model /tmp/smol8 --device cuda --tensor-parallel $tp --max-tokens 48 \
      --ignore-eos --temperature 0 --prompt "The history of the Roman Empire begins" > "$out/tp_greedy_$tp.txt" 2> "$out/tp_greedy_$tp.err"
    echo "lilctl generate TP=$tp rc=$? text sha=$(grep -v '^\[20' "$out/tp_greedy_$tp.txt" | sha256sum | cut -c1-12)" | log
  done
  tail -3 "$out/tp_greedy_2.err" | log
fi
if has scale && [ "$gpus" -ge 4 ]; then
  # Issue 8: Llama-3-8B at TP=1/2/4(/8) and Llama-3-70B at TP=4(/8), one run; TP=N logits vs TP=1.
  need8b
  tps=1,2,4; [ "$gpus" -ge 8 ] && tps=1,2,4,8
  has tp || timeout 300 "$c/bin/gpu_decode_bench" --model /tmp/l8 --hbm-tbs $hbm --steps 32 --context 1024 --batch 1,64 \
    --kv-mib 12000 --tensor-parallel $tps 2>&1 | tee "$out/scale_8b.log" | grep -vE "^\|---" | log
  ids=$(python3 -c 'import random; r=random.Random(3); print([r.randrange(128000) for _ in range(200)])')
  big=4; [ "$gpus" -ge 8 ] && big=8
  for tp in 1 $big; do
    timeout 200 "$c/bin/lilctl" logits --model /tmp/l8 --device cuda --kv-mib 4000 --tensor-parallel $tp \
      --ids "$ids" --greedy 32 --out /tmp/logits_$tp.f32 > "$out/logits_$tp.txt" 2>&1
    echo "lilctl logits TP=$tp rc=$? greedy: $(grep -v '^\[20' "$out/logits_$tp.txt" | tail -1 | cut -c1-150)" | log
  done
  python3 - "$big" <<'PY' 2>&1 | log
import sys, numpy as np
big = sys.argv[1]
a = np.fromfile("/tmp/logits_1.f32", dtype=np.float32).reshape(-1, 128256)
b = np.fromfile(f"/tmp/logits_{big}.f32", dtype=np.float32).reshape(-1, 128256)
rel = np.linalg.norm(a - b, axis=1) / np.linalg.norm(a, axis=1)
print(f"8B logits TP={big} vs TP=1 over {a.shape[0]} prompt positions: relative L2 max {rel.max():.2e} mean {rel.mean():.2e}; "
      f"argmax equal {np.mean(a.argmax(1) == b.argmax(1)) * 100:.1f}%")
PY
  if [ ! -d /tmp/l70 ]; then
    (time timeout 300 "$c/bin/lilctl" make-random-model --like llama3-8b --layers 80 --hidden-size 8192 \
      --intermediate-size 28672 --heads 64 --kv-heads 8 --head-dim 128 --out /tmp/l70) > "$out/make70b.log" 2>&1
    echo "make 70B rc=$? $(grep -E 'real|GB/s' "$out/make70b.log" | tr '\n' ' ')" | log
  fi
  timeout 400 "$c/bin/gpu_decode_bench" --model /tmp/l70 --hbm-tbs $hbm --steps 16 --context 1024 --batch 1,64 \
    --kv-mib 20000 --tensor-parallel $big 2>&1 | tee "$out/scale_70b.log" | grep -vE "^\|---" | log
fi
if has tpnum && [ "$gpus" -ge 2 ]; then
  # TP=N logits against the fp32 CPU engine and against TP=1 on the 8B shape: does splitting
  # add error beyond bf16's own?
  need8b
  ids=$(python3 -c 'import random; r=random.Random(3); print([r.randrange(128000) for _ in range(64)])')
  tps="cpu 1 2"; [ "$gpus" -ge 4 ] && tps="cpu 1 2 4"
  for tp in $tps; do
    if [ "$tp" = cpu ]; then dev="--device cpu"; else dev="--device cuda --tensor-parallel $tp"; fi
    timeout 240 "$c/bin/lilctl" logits --model /tmp/l8 $dev --kv-mib 2000 --ids "$ids" --greedy 8 \
      --out /tmp/nlogits_$tp.f32 > "$out/nlogits_$tp.txt" 2>&1
    echo "lilctl logits $tp rc=$?" | log
  done
  python3 - $tps <<'PY' 2>&1 | log
import sys, numpy as np
names = sys.argv[1:]
L = {n: np.fromfile(f"/tmp/nlogits_{n}.f32", dtype=np.float32).reshape(-1, 128256) for n in names}
ref = L["cpu"]
def rel(a, b):
    r = np.linalg.norm(a - b, axis=1) / np.linalg.norm(b, axis=1)
    return f"rel L2 max {r.max():.2e} mean {r.mean():.2e}, argmax equal {np.mean(a.argmax(1) == b.argmax(1)) * 100:.1f}%"
for n in names[1:]:
    print(f"8B logits, 64 positions: CUDA TP={n} vs CPU fp32: {rel(L[n], ref)}")
for n in names[2:]:
    print(f"8B logits, 64 positions: CUDA TP={n} vs CUDA TP=1: {rel(L[n], L['1'])}")
PY
fi
if has e2e; then
  if [ -d "$root/.whl" ] && [ ! -d /tmp/site ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$root"/.whl/*.whl > "$out/pip.log" 2>&1
    cp "$root/.whl/health.proto" /tmp/site/ 2>/dev/null
  fi
  mkdir -p /tmp/e2ebuild/server /tmp/e2ebuild/tools
  cp "$c/bin/lilserve" "$c/bin/lilserve_cuda.so" /tmp/e2ebuild/server/; cp "$c/bin/lilctl" /tmp/e2ebuild/tools/
  # e2e_run LOG MODEL FLAGS: the client test against the daemon; when it is still running after
  # $E2E_HANG_S seconds (default 240), what the daemon was doing goes to LOG.hang (the daemon's
  # log tail, GPU utilization, every host thread's stack through cuda-gdb and the kernels on the
  # GPUs), then both are killed.
  e2e_run() {
    local logf=$1 model=$2 flags=$3
    rm -f /tmp/lilserve_*.log
    PYTHONPATH=/tmp/site LILSERVE_HEALTH_PROTO=/tmp/site/health.proto LILSERVE_BUILD=/tmp/e2ebuild \
      LILSERVE_E2E_MODEL=$model LILSERVE_E2E_NO_PROMETHEUS=1 LILSERVE_DAEMON_FLAGS="$flags" PYTHONUNBUFFERED=1 \
      python3 "$root/tests/e2e/server_e2e_test.py" > "$logf" 2>&1 &
    local py=$! waited=0
    while kill -0 $py 2>/dev/null && [ $waited -lt "${E2E_HANG_S:-240}" ]; do sleep 1; waited=$((waited + 1)); done
    if kill -0 $py 2>/dev/null; then
      {
        echo "== still running after ${waited}s; daemon log tail:"; tail -40 "$(ls -t /tmp/lilserve_*.log | head -1)"
        nvidia-smi --query-gpu=index,utilization.gpu,memory.used --format=csv
        for pid in $(pgrep -f /tmp/e2ebuild/server/lilserve); do
          echo "== cuda-gdb -p $pid"
          timeout 90 cuda-gdb -p "$pid" -batch -ex "info cuda kernels" -ex "thread apply all bt 12" 2>&1 | grep -v "^\[New LWP" | head -300
        done
      } > "$logf.hang" 2>&1
      pkill -9 -f /tmp/e2ebuild/server/lilserve; kill -9 $py
      echo "e2e HUNG after ${waited}s: see $(basename "$logf").hang" | log
      grep -E "^== still|passed|stops|error|Error" "$logf.hang" "$logf" | head -20 | log
      return 124
    fi
    wait $py
  }
  if [ -s /tmp/default.gguf ]; then
    e2e_run "$out/e2e.log" /tmp/default.gguf "${E2E_FLAGS:---device cuda}"
    echo "server_e2e_test (${E2E_FLAGS:---device cuda}) rc=$?" | log
    grep -E "^ok|PASS|FAIL|running on|tensor" "$out/e2e.log" | head -30 | log
    # $E2E_TP (2 or 4): the same test on the default model padded to 12 / 4 heads
    # (tools/py/pad_heads.py: the added heads contribute exactly 0, pad_heads_test checks it)
    # with --tensor-parallel $E2E_TP on as many GPUs.
    if [ -n "${E2E_TP:-}" ]; then
      [ -s /tmp/pad.gguf ] || PYTHONPATH=/tmp/site python3 "$root/tools/py/pad_heads.py" /tmp/default.gguf \
        /tmp/pad.gguf --heads 12 --kv-heads 4 2>&1 | log
      e2e_run "$out/e2e_tp$E2E_TP.log" /tmp/pad.gguf "--device cuda --tensor-parallel $E2E_TP"
      echo "server_e2e_test (padded 12/4, --device cuda --tensor-parallel $E2E_TP) rc=$?" | log
      grep -E "^ok|PASS|FAIL|running on|tensor" "$out/e2e_tp$E2E_TP.log" | head -30 | log
    fi
  else
    echo "e2e: default model parts present: $(ls /tmp/parts | tr '\n' ' ')" | log
  fi
fi
if has hfcompile; then  # last: torch.compile's first run takes minutes
  need8b
  PYTHONUNBUFFERED=1 timeout ${HFCOMPILE_TIMEOUT:-300} python3 "$root/bench/gpu_peer.py" --model /tmp/l8 --context 1024 \
    --steps 32 --compile 2>&1 | tee "$out/peer_compile.log" | grep -E "HBM_TBS|GEMM_TFLOPS|HF_|HF compile" | log
fi
echo "done" | log

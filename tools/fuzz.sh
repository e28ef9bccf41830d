#!/usr/bin/env bash
# File: tools/fuzz.sh
# Builds the libFuzzer targets of tests/fuzz with clang (-fsanitize=fuzzer,address,undefined)
# in build-fuzz/ and runs each for a bounded time on its corpus (tests/fuzz/corpus/<target>,
# read-only here; new inputs go to build-fuzz/corpus/<target>). A crash, a leak, a timeout
# (10 s on one input) or more than 2 GiB RSS fails the run; the reproducer is written to
# build-fuzz/crashes/<target>/ - fix the owning code and copy it into the repo corpus.
#   tools/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]    default: 60 s, every target
#   tools/fuzz.sh --build-only
# Reproduce one input: build-fuzz/tests/fuzz/<target>_fuzz FILE
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
seconds=60
build_only=0
targets=()
for a in "$@"; do
  case "$a" in
    --build-only) build_only=1 ;;
    [0-9]*) seconds="$a" ;;
    *) targets+=("$a") ;;
  esac
done
all=(safetensors gguf tokenizer_json tokenizer chat_template request)
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")

cc=$(command -v clang-14 || command -v clang || true)
cxx=$(command -v clang++-14 || command -v clang++ || true)
if [ -z "$cc" ] || [ -z "$cxx" ]; then
  echo "fuzz: clang is missing (tools/setup.sh installs clang-14 and libclang-rt-14-dev)" >&2
  exit 1
fi
if [ ! -f build-fuzz/build.ninja ]; then
  cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLILSERVE_FUZZ=ON \
    -DLILSERVE_CUDA=OFF -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" >/dev/null
fi
t0=$(date +%s)
cmake --build build-fuzz -j "${LILSERVE_JOBS:-$(nproc)}" --target "${targets[@]/%/_fuzz}"
echo "fuzz: built ${#targets[@]} targets in $(( $(date +%s) - t0 )) s"
[ "$build_only" = 1 ] && exit 0

declare -A max_len=([safetensors]=4096 [gguf]=16384 [tokenizer_json]=16384 [tokenizer]=2048
                    [chat_template]=8192 [request]=2048)
export LILSERVE_ROOT="$root"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
sym=$(command -v llvm-symbolizer-14 || command -v llvm-symbolizer || true)
[ -n "$sym" ] && export ASAN_SYMBOLIZER_PATH="$sym"
failed=()
for t in "${targets[@]}"; do
  work=build-fuzz/corpus/$t
  crashes=build-fuzz/crashes/$t
  mkdir -p "$work" "$crashes"
  dict=()
  [ -f "tests/fuzz/$t.dict" ] && dict=(-dict="tests/fuzz/$t.dict")
  log=build-fuzz/fuzz-$t.log
  echo "fuzz: $t for $seconds s"
  if build-fuzz/tests/fuzz/${t}_fuzz "$work" "tests/fuzz/corpus/$t" "${dict[@]}" \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len="${max_len[$t]:-4096}" \
      -artifact_prefix="$crashes/" -print_final_stats=1 >"$log" 2>&1; then
    echo "fuzz: $t ok: $(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$') runs," \
         "corpus $(ls "$work" | wc -l) new + $(ls "tests/fuzz/corpus/$t" | wc -l) seeds"
  else
    echo "fuzz: $t FAILED (log $log, reproducer in $crashes/):"
    grep -E 'ERROR|SUMMARY|FUZZ_CHECK|runtime error|Test unit written' "$log" | head -20
    failed+=("$t")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]}"
  exit 1
fi
echo "fuzz: ${#targets[@]} passed, 0 failed"

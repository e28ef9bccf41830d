#!/usr/bin/env bash
# File: tools/sanitize.sh
# Sanitizer builds of the test suite (docs/RELIABILITY.md):
#   tools/sanitize.sh asan [CTEST ARGS]   AddressSanitizer + UndefinedBehaviorSanitizer (findings
#                                         fatal) in build-fuzz/, the clang build tools/fuzz.sh makes
#                                         (clang compiles ASan+UBSan ~3x faster than g++; the
#                                         fuzzers' coverage hooks are harmless): every C++ unit test
#                                         (engine loop with the real model, gRPC services, scheduler,
#                                         parsers) and the daemon stress test (200 streams, cancels,
#                                         deadlines, aborts) against the ASan daemon.
#   tools/sanitize.sh tsan [CTEST ARGS]   build-tsan/: ThreadSanitizer (g++) on the engine loop
#                                         (inbox, outboxes, cancel, preemption) with the real model;
#                                         absl::Mutex is annotated by tests/reliability/
#                                         tsan_absl_sync.cc. The gRPC side (reactors) reports races
#                                         inside Debian's uninstrumented gRPC (docs/RELIABILITY.md):
#                                         `tools/sanitize.sh tsan -R server_auth_test` shows them.
#   tools/sanitize.sh ci [CTEST ARGS]     CI's subset of `asan`: the tests that need only the
#                                         libraries the fuzzers already built (scheduler, monitor,
#                                         tokenizer, chat template, model formats). With the fuzz
#                                         targets (corpus replay + fuzzing) this covers every parser
#                                         and the scheduler in CI; the engine loop and the reactors
#                                         need the whole engine and server built, so `asan` is run
#                                         by hand (numbers in docs/RELIABILITY.md).
# Extra arguments go to ctest (e.g. -R engine_loop). Python numerics parity tests are left to
# the plain build: they check numbers, not memory, and ASan only makes them slower.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
kind="${1:-asan}"
shift || true
jobs="${LILSERVE_JOBS:-$(nproc)}"
case "$kind" in
  asan)
    tools/fuzz.sh --build-only >/dev/null
    dir=build-fuzz
    labels=(-L 'unit')
    e2e=(server_stress_test)
    export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
    export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
    ;;
  tsan)
    dir=build-tsan
    flags=(-DLILSERVE_TSAN=ON)
    tests_regex='engine_loop_test'
    labels=()
    e2e=()
    export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1:suppressions=$root/tests/reliability/tsan.supp}"
    # OpenMP's runtime (libgomp) is not instrumented: one thread keeps its barriers out of it.
    export OMP_NUM_THREADS=1
    ;;
  ci)
    ci_tests=(block_manager_test stop_strings_test sparse_policy_test scheduler_test
      scheduler_stress_test scheduler_monitor_modes_test deflate_size_test tokenizer_unit_test
      chat_template_test format_dequant_test format_safetensors_test format_gguf_test)
    tools/fuzz.sh --build-only >/dev/null
    t0=$(date +%s)
    cmake --build build-fuzz -j "$jobs" --target "${ci_tests[@]}"
    echo "sanitize ci: built in $(( $(date +%s) - t0 )) s"
    export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
    export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
    cd build-fuzz
    ctest --output-on-failure -j "${LILSERVE_TEST_JOBS:-2}" --timeout 1500 \
      -R "^($(IFS='|'; echo "${ci_tests[*]}"))\$" "$@"
    exit $?
    ;;
  *)
    echo "usage: tools/sanitize.sh asan|tsan|ci [ctest args]" >&2
    exit 2
    ;;
esac
t0=$(date +%s)
if [ "$kind" = asan ]; then
  cmake --build "$dir" -j "$jobs" --target server/all tools/all tests/all  # not bench/
else
  if [ ! -f "$dir/build.ninja" ]; then
    cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLILSERVE_CUDA=OFF "${flags[@]}" >/dev/null
  fi
  cmake --build "$dir" -j "$jobs" --target engine_loop_test server_auth_test
fi
t1=$(date +%s)
echo "sanitize $kind: built in $((t1 - t0)) s"
cd "$dir"
status=0
if [ ${#labels[@]} -gt 0 ]; then
  ctest --output-on-failure -j "${LILSERVE_TEST_JOBS:-2}" --timeout 1500 "${labels[@]}" -LE py "$@" || status=1
else
  ctest --output-on-failure -j "${LILSERVE_TEST_JOBS:-2}" --timeout 1500 -R "$tests_regex" "$@" || status=1
fi
if [ ${#e2e[@]} -gt 0 ]; then
  ctest --output-on-failure --timeout 1500 -R "^($(IFS='|'; echo "${e2e[*]}"))\$" || status=1
fi
echo "sanitize $kind: tests ran in $(( $(date +%s) - t1 )) s"
exit $status

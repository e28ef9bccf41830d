#!/usr/bin/env bash
# File: tools/sanitize.sh
# Sanitizer builds of the test suite (docs/RELIABILITY.md):
#   tools/sanitize.sh asan [CTEST ARGS]   AddressSanitizer + UndefinedBehaviorSanitizer (findings
#                                         fatal) in build-fuzz/, the clang build tools/fuzz.sh makes
#                                         (clang compiles ASan+UBSan ~3x faster than g++; the
#                                         fuzzers' coverage hooks are harmless): every C++ unit and
#                                         integration test (engine loop with the real model, gRPC
#                                         services, scheduler, parsers) and the daemon stress test
#                                         (200 streams, cancels, deadlines, aborts) against the
#                                         ASan daemon.
#   tools/sanitize.sh ci [CTEST ARGS]     CI (tools/test.sh), in the same build: the scheduler,
#                                         monitor, tokenizer, chat-template and model-format unit
#                                         tests, the server unit tests (auth on every RPC through a
#                                         real gRPC server, request validation, metrics), 5 of the 8
#                                         engine-loop cases with the real model (16 concurrent vs
#                                         alone, prefix cache, sparse policies, cancel, backend
#                                         error) and the daemon stress test against the ASan daemon.
#                                         Measured (clean build dir, ccache off, 2 cores): engine,
#                                         server and daemon objects add 744 s of CPU (~6.2 min on an
#                                         idle 2-core machine) to the fuzz build's 712 s; the new
#                                         tests add ~230 s (stress test 82 s, engine cases 144 s,
#                                         server unit tests 1 s): ~10 min on top of ~25 min. The
#                                         other 3 engine cases (preemption 88 s, sink/H2O 36 s,
#                                         monitor modes 45 s) are left to `asan` to keep
#                                         tools/test.sh under ~35 min (docs/RELIABILITY.md).
#   tools/sanitize.sh tsan                build-tsan/: ThreadSanitizer (g++): the Generate reactors
#                                         in the TSan daemon (tests/reliability/tsan_reactor_test.py:
#                                         slow readers, cancels, Abort, deadlines; any report fails),
#                                         the engine loop (inbox, outboxes, cancel, preemption) and
#                                         the auth test. Uninstrumented Abseil/gRPC are made visible
#                                         by tests/reliability/tsan_absl_sync.cc (absl::Mutex) and
#                                         tsan_grpc_batch.cc (start batch -> completion callback);
#                                         tests/reliability/tsan.supp ignores only interceptor
#                                         accesses made from inside those libraries.
#   tools/sanitize.sh tsan-planted        passes only if TSan reports the race planted in the
#                                         reactor (LILSERVE_TSAN_PLANTED_RACE, TSan builds only):
#                                         shows the annotations and suppressions hide no race of ours.
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
    labels=(-L 'unit|integration')
    e2e=(server_stress_test)
    export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
    export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
    ;;
  tsan|tsan-planted)
    dir=build-tsan
    if [ ! -f "$dir/build.ninja" ]; then
      cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLILSERVE_CUDA=OFF \
        -DLILSERVE_TSAN=ON >/dev/null
    fi
    t0=$(date +%s)
    cmake --build "$dir" -j "$jobs" --target engine_loop_test server_auth_test lilserve
    echo "sanitize $kind: built in $(( $(date +%s) - t0 )) s"
    # halt_on_error=0: the daemon drains and exits 66 on any report, so every report is shown.
    export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=0:second_deadlock_stack=1:suppressions=$root/tests/reliability/tsan.supp}"
    # OpenMP's runtime (libgomp) is not instrumented: one thread keeps its barriers out of it.
    export OMP_NUM_THREADS=1
    export LILSERVE_ROOT="$root" LILSERVE_BUILD="$root/$dir"
    py="$root/.venv/bin/python"
    t1=$(date +%s)
    if [ "$kind" = tsan-planted ]; then
      # The check below must be able to fail: a race planted in the reactor is reported.
      "$py" tests/reliability/tsan_reactor_test.py --expect-race
      exit $?
    fi
    status=0
    "$py" tests/reliability/tsan_reactor_test.py || status=1
    (cd "$dir" && ctest --output-on-failure --timeout 1500 -R '^server_auth_test$' "$@") || status=1
    # The engine loop under TSan runs ~15 min per heavy case: the concurrency cases by default.
    engine_cases=EngineLoopTest.SixteenConcurrentEqualAloneAndPagesComeBack
    engine_cases+=":EngineLoopTest.CancelEndsOnceAndFreesPages"
    engine_cases+=":EngineLoopTest.BackendErrorFailsItsStepAndTheLoopGoesOn"
    "$dir/tests/engine/loop/engine_loop_test" \
      --gtest_filter="${LILSERVE_TSAN_ENGINE_CASES:-$engine_cases}" || status=1
    echo "sanitize $kind: tests ran in $(( $(date +%s) - t1 )) s"
    exit $status
    ;;
  ci)
    ci_tests=(block_manager_test stop_strings_test sparse_policy_test scheduler_test
      scheduler_stress_test scheduler_monitor_modes_test deflate_size_test tokenizer_unit_test
      chat_template_test format_dequant_test format_safetensors_test format_gguf_test
      server_auth_test server_request_convert_test server_metrics_test)
    # 5 of the 8 engine-loop cases (144 s here under ASan); `asan` runs all 8 (313 s).
    engine_cases=EngineLoopTest.SixteenConcurrentEqualAloneAndPagesComeBack
    engine_cases+=":EngineLoopTest.PrefixCachedRequestsEqualUncached"
    engine_cases+=":EngineLoopTest.SparsePoliciesAtFullBudgetEqualDense"
    engine_cases+=":EngineLoopTest.CancelEndsOnceAndFreesPages"
    engine_cases+=":EngineLoopTest.BackendErrorFailsItsStepAndTheLoopGoesOn"
    engine_cases="${LILSERVE_CI_ENGINE_CASES:-$engine_cases}"
    tools/fuzz.sh --build-only >/dev/null
    t0=$(date +%s)
    cmake --build build-fuzz -j "$jobs" --target "${ci_tests[@]}" engine_loop_test lilserve
    echo "sanitize ci: built in $(( $(date +%s) - t0 )) s"
    export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
    export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
    t1=$(date +%s)
    status=0
    (cd build-fuzz && ctest --output-on-failure -j "${LILSERVE_TEST_JOBS:-2}" --timeout 1500 \
      -R "^($(IFS='|'; echo "${ci_tests[*]}"))\$" "$@") || status=1
    LILSERVE_ROOT="$root" LILSERVE_BUILD="$root/build-fuzz" OMP_WAIT_POLICY=passive \
      build-fuzz/tests/engine/loop/engine_loop_test --gtest_filter="$engine_cases" || status=1
    (cd build-fuzz && ctest --output-on-failure --timeout 1500 -R '^server_stress_test$') || status=1
    echo "sanitize ci: tests ran in $(( $(date +%s) - t1 )) s"
    exit $status
    ;;
  *)
    echo "usage: tools/sanitize.sh asan|tsan|tsan-planted|ci [ctest args]" >&2
    exit 2
    ;;
esac
# asan
t0=$(date +%s)
cmake --build "$dir" -j "$jobs" --target server/all tools/all tests/all  # not bench/
t1=$(date +%s)
echo "sanitize $kind: built in $((t1 - t0)) s"
cd "$dir"
status=0
ctest --output-on-failure -j "${LILSERVE_TEST_JOBS:-2}" --timeout 1500 "${labels[@]}" -LE py "$@" || status=1
ctest --output-on-failure --timeout 1500 -R "^($(IFS='|'; echo "${e2e[*]}"))\$" || status=1
echo "sanitize $kind: tests ran in $(( $(date +%s) - t1 )) s"
exit $status

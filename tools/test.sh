#!/usr/bin/env bash
# File: tools/test.sh
# The whole test suite from a fresh machine: set up, build, run every CTest test.
# GPU tests (label gpu) skip themselves where no GPU is present.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
tools/setup.sh
tools/build.sh
(cd build && ctest --output-on-failure -j "${LILSERVE_TEST_JOBS:-2}" --timeout 1500 "$@")
# Reliability (docs/RELIABILITY.md): every libFuzzer target for a bounded time, then CI's
# ASan+UBSan suite in the same clang build (parser/scheduler/server unit tests, engine loop with
# the real model, daemon stress test: ~19 min on 2 cores). LILSERVE_FUZZ_SECONDS=0 skips both.
if [ "$#" -eq 0 ] && [ "${LILSERVE_FUZZ_SECONDS:-30}" != 0 ]; then
  tools/fuzz.sh "${LILSERVE_FUZZ_SECONDS:-30}"
  tools/sanitize.sh ci
fi

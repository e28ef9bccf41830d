#!/usr/bin/env bash
# File: tools/build.sh
# Configures and builds lilserve into build/ (Release, Ninja). The CUDA backend module is
# built when nvcc is found (it is compiled for sm_90 even on machines without a GPU).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
cuda=OFF
if [ -x /usr/local/cuda/bin/nvcc ] || command -v nvcc >/dev/null 2>&1; then cuda=ON; fi
if [ ! -f build/build.ninja ]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DLILSERVE_CUDA="${LILSERVE_CUDA:-$cuda}" \
    -DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc
fi
cmake --build build -j "${LILSERVE_JOBS:-$(nproc)}"

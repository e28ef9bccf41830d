#!/usr/bin/env bash
# File: tools/gpu_pack.sh
# Packs what a device-machine run needs (the GPU image has CUDA, cuBLAS, PyTorch, but no gRPC
# or Debian's shared libraries) into .carry/pack.tar.xz: the named binaries of a CUDA build
# dir plus every non-system shared library `ldd` shows for them. tests/gpu/run_on_gpu.sh
# unpacks it. Usage: tools/gpu_pack.sh BUILD_DIR [target...]; without targets, everything the
# stages of run_on_gpu.sh use.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build=$1
shift
if [ $# -eq 0 ]; then
  set -- lilctl lilserve lilserve_cuda.so gpu_ops_test gpu_attention_test gpu_backend_test gpu_tp_test \
    backend_factory_test gpu_gemm_test gpu_attention_bench gpu_boundary_bench gpu_tma_stream_bench gpu_decode_bench \
    gpu_gemv_bench gpu_sample_bench nccl_allreduce_bench host_step_bench \
    libkernel_profiler.so
fi
stage=$(mktemp -d)
mkdir -p "$stage/bin" "$stage/lib" "$root/.carry"
for t in "$@"; do
  f=$(find "$root/$build" -type f -name "$t" -perm -u+x | head -1)
  [ -n "$f" ] || { echo "gpu_pack: no binary $t in $build" >&2; exit 1; }
  cp "$f" "$stage/bin/"
done
# Shared libraries outside glibc / the CUDA driver.
for f in "$stage"/bin/*; do
  ldd "$f" 2>/dev/null | awk '/=> \//{print $3}'
done | sort -u | { grep -vE '/(libc|libm|libdl|libpthread|librt|ld-linux|libgcc_s|libstdc\+\+|libcuda)\.so' || true; } |
  while read -r lib; do cp -L "$lib" "$stage/lib/"; done
tar -C "$stage" -cJf "$root/.carry/pack.tar.xz" bin lib
rm -rf "$stage"
ls -la "$root/.carry/pack.tar.xz"

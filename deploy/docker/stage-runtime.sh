#!/usr/bin/env bash
# File: deploy/docker/stage-runtime.sh
# Lays out what the runtime image carries, under DEST/opt/lilserve:
#   bin/     lilserve, lilctl
#   lib/     lilserve_cuda.so (when built) and every shared library the binaries and the
#            module load, except those every base image has (glibc, libstdc++, libgcc) and
#            CUDA's own (from the CUDA runtime image and the driver)
#   models/  the default model (SmolLM2-135M-Instruct Q4_1 GGUF)
# Run from the repository root after tools/setup.sh and tools/build.sh (deploy/Dockerfile
# does); tests/deploy/dockerfile_test.py runs it on the CI build and starts the staged daemon.
#   deploy/docker/stage-runtime.sh DEST [BUILD_DIR]
set -euo pipefail
dest=${1:?usage: stage-runtime.sh DEST [BUILD_DIR]}
build=${2:-build}
model=models/SmolLM2-135M-Instruct.Q4_1.gguf
root=$dest/opt/lilserve
for f in "$build/server/lilserve" "$build/tools/lilctl" "$model"; do
  [ -f "$f" ] || { echo "stage-runtime: $f is missing (run tools/setup.sh and tools/build.sh)" >&2; exit 1; }
done
mkdir -p "$root/bin" "$root/lib" "$root/models"
install -m 0755 "$build/server/lilserve" "$build/tools/lilctl" "$root/bin/"
# The daemon looks for the CUDA module beside itself, then in ../lib.
if [ -f "$build/server/lilserve_cuda.so" ]; then
  install -m 0644 "$build/server/lilserve_cuda.so" "$root/lib/"
fi
install -m 0644 "$model" "$root/models/"

# Every base image has these; CUDA's come from the runtime image or the driver.
skip='^(linux-vdso|ld-linux|libc|libm|libdl|libpthread|librt|libresolv|libutil|libstdc\+\+|libgcc_s|libcuda|libcudart|libcublas|libcublasLt|libnccl|libnvidia-)[.-]'
missing=0
while read -r name arrow path _; do
  [[ $name =~ $skip ]] && continue
  if [ "$arrow" != "=>" ] || [ "$path" = "not" ]; then
    echo "stage-runtime: $name is not found" >&2
    missing=1
    continue
  fi
  cp -L "$path" "$root/lib/$name"
done < <(for f in "$root"/bin/* "$root"/lib/*.so; do [ -e "$f" ] && ldd "$f"; done | grep '=>' | sort -u)
[ "$missing" = 0 ] || exit 1
echo "stage-runtime: $(find "$root" -type f | wc -l) files, $(du -sh "$root" | cut -f1) under $root"

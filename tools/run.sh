#!/usr/bin/env bash
# File: tools/run.sh
# The main job from a fresh machine: set up, build, then generate a sample completion
# with the default model (SmolLM2-135M-Instruct), streaming the text as it is produced.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
tools/setup.sh
tools/build.sh
exec build/tools/lilctl generate --model models/SmolLM2-135M-Instruct.Q4_1.gguf \
  --chat --prompt "${1:-Write three sentences about the sea.}" --max-tokens 96

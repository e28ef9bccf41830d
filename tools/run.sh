#!/usr/bin/env bash
# File: tools/run.sh
# The main job from a fresh machine: set up, build, start the lilserve daemon on the default
# model (SmolLM2-135M-Instruct), wait until it is ready, stream a sample completion through
# the gRPC client, then keep serving in the foreground (Ctrl-C drains and stops it).
#   tools/run.sh ["your prompt"]      env: LILSERVE_PORT (50051), LILSERVE_METRICS_PORT (9090)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
tools/setup.sh
tools/build.sh
port="${LILSERVE_PORT:-50051}"
metrics_port="${LILSERVE_METRICS_PORT:-9090}"
build/server/lilserve --model models/SmolLM2-135M-Instruct.Q4_1.gguf \
  --port "$port" --metrics-port "$metrics_port" &
daemon=$!
# Also on EXIT: a failed step below (set -e) must not leave the daemon running on the port.
trap 'kill -TERM $daemon 2>/dev/null; wait $daemon 2>/dev/null' INT TERM EXIT
# Ready = health SERVING on two polls in a row, 0.5 s apart: gRPC's default health service
# answers SERVING from the moment the server starts until the daemon sets it NOT_SERVING a few
# statements later, so a first poll that lands in that window would go on before the model has
# loaded (seen once: the sample completion then failed with UNAVAILABLE, "model loading").
serving=0
for _ in $(seq 1 240); do
  if build/tools/lilctl health --server "localhost:$port" >/dev/null 2>&1; then
    serving=$((serving + 1))
    [ "$serving" -ge 2 ] && break
  else
    serving=0
  fi
  if ! kill -0 "$daemon" 2>/dev/null; then echo "run: lilserve exited" >&2; exit 1; fi
  sleep 0.5
done
echo "run: lilserve is serving on localhost:$port (metrics: http://localhost:$metrics_port/metrics)"
build/tools/lilctl generate --server "localhost:$port" --chat \
  --prompt "${1:-Write three sentences about the sea.}" --max-tokens 96
echo "run: the daemon keeps serving; Ctrl-C to stop it"
wait "$daemon"

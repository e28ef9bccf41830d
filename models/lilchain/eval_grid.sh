#!/usr/bin/env bash
# File: models/lilchain/eval_grid.sh
# Serves a model with lilserve and runs `lilctl eval` over a problem set, one run per
# attention mode (so a time limit keeps the modes already finished), then merges the tables.
# Used for docs/LIL.md: LilChain on the GPU (full grid) and on CPU (a small grid).
#
#   models/lilchain/eval_grid.sh --model DIR --problems FILE --out DIR [--device cuda|cpu]
#       [--limit N] [--max-tokens 2048] [--concurrency 256] [--modes "dense sink quest h2o"]
#       [--budgets 64,128,256,512] [--monitor-modes shadow,enforce,conclude] [--kv-mib N]
#       [--lilserve PATH] [--lilctl PATH] [-- extra lilctl eval flags]
# Plots need matplotlib in $PYTHON (default python3), else the command to make them is printed.
# Monitor off is left out by default: shadow generates the same outputs and also reports
# where the monitor would have stopped (the report compares enforce/conclude with shadow).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
model="" problems="" out="" device="cpu" limit=0 max_tokens=2048 concurrency=256
modes="dense sink quest h2o" budgets="64,128,256,512" monitor_modes="shadow,enforce,conclude"
kv_mib="" lilserve="${LILSERVE:-$root/build/server/lilserve}" lilctl="${LILCTL:-$root/build/tools/lilctl}"
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --model) model="$2"; shift 2 ;;
    --problems) problems="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --device) device="$2"; shift 2 ;;
    --limit) limit="$2"; shift 2 ;;
    --max-tokens) max_tokens="$2"; shift 2 ;;
    --concurrency) concurrency="$2"; shift 2 ;;
    --modes) modes="$2"; shift 2 ;;
    --budgets) budgets="$2"; shift 2 ;;
    --monitor-modes) monitor_modes="$2"; shift 2 ;;
    --kv-mib) kv_mib="$2"; shift 2 ;;
    --lilserve) lilserve="$2"; shift 2 ;;
    --lilctl) lilctl="$2"; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "eval_grid.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
for v in model problems out; do
  [ -n "${!v}" ] || { echo "eval_grid.sh: --$v is required" >&2; exit 2; }
done
[ -x "$lilserve" ] || { echo "eval_grid.sh: $lilserve is not built (--lilserve)" >&2; exit 2; }
[ -x "$lilctl" ] || { echo "eval_grid.sh: $lilctl is not built (--lilctl)" >&2; exit 2; }
[ -n "$kv_mib" ] || kv_mib=$([ "$device" = cuda ] && echo 16384 || echo 1024)
mkdir -p "$out"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$lilserve" --model "$model" --device "$device" --host 127.0.0.1 --port "$port" \
  --metrics-host 127.0.0.1 --metrics-port "$mport" --max-running-seqs "$concurrency" \
  --kv-mib "$kv_mib" --max-batched-tokens 8192 > "$out/lilserve.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 600); do
  if [ "$("$lilctl" health --server "127.0.0.1:$port" 2>/dev/null)" = SERVING ]; then break; fi
  kill -0 $pid 2>/dev/null || { echo "eval_grid.sh: lilserve exited:" >&2; tail -20 "$out/lilserve.log" >&2; exit 1; }
  sleep 0.2
done
"$lilctl" info --server "127.0.0.1:$port" | tee "$out/server_info.txt" || true
dirs=()
for mode in $modes; do
  echo "== $mode" >&2
  "$lilctl" eval "$problems" --server "127.0.0.1:$port" --out "$out/$mode" --sparse-modes "$mode" \
    --budgets "$budgets" --monitor-modes "$monitor_modes" --max-tokens "$max_tokens" \
    -c "$concurrency" --limit "$limit" --conclusion-text $'\nAnswer:' --conclusion-max-tokens 16 \
    --progress false ${extra[@]+"${extra[@]}"} > "$out/$mode.md"
  dirs+=("$out/$mode")
done
python="${PYTHON:-python3}"
if "$python" -c 'import matplotlib' 2>/dev/null; then
  "$python" "$root/tools/py/lil_eval_plot.py" "${dirs[@]}" --out "$out"
else
  echo "eval_grid.sh: no matplotlib here; plot later: .venv/bin/python tools/py/lil_eval_plot.py ${dirs[*]} --out $out" >&2
fi
for mode in $modes; do cat "$out/$mode.md"; done | awk 'NR <= 2 || !/^\| attention|^\|---/' | tee "$out/table.md"

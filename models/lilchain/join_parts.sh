#!/usr/bin/env bash
# File: models/lilchain/join_parts.sh
# Joins what `train_on_gpu.sh --pack DIR` brought back into a HuggingFace directory:
#   models/lilchain/join_parts.sh DIR [DEST=models/cache/lilchain]
#   # -> DEST/hf/, DEST/metrics.json, train.log, eval_outputs.jsonl, eval_problems.jsonl
# The weights are checked against the SHA-256 the GPU machine wrote.
set -euo pipefail
src="${1:?usage: join_parts.sh PACK_DIR [DEST]}"
here="$(cd "$(dirname "$0")" && pwd)"
dest="${2:-$here/../cache/lilchain}"
mkdir -p "$dest/hf"
tar -xzf "$src/lilchain-small.tar.gz" -C "$dest"
cat "$src"/model.safetensors.part-* > "$dest/hf/model.safetensors"
(cd "$dest/hf" && sha256sum -c model.safetensors.sha256)
for f in metrics.json train.log; do [ -f "$src/$f" ] && cp "$src/$f" "$dest/"; done
# The held-out problems are not in the pack: the generator makes the same set from the task
# and seed in metrics.json (pure Python, deterministic).
"${PYTHON:-python3}" - "$dest" "$here" <<'PY'
import json, os, sys
dest, here = sys.argv[1], sys.argv[2]
sys.path.insert(0, here)
import lilchain_data as data
m = json.load(open(os.path.join(dest, "metrics.json")))
e, t = m.get("eval_full_attention", {}), m["task"]
seed, n = e.get("seed", 2), e.get("problems", 512)
cfg = data.ChainConfig(t["min_links"], t["max_links"], t["min_chains"], t["max_chains"])
with open(os.path.join(dest, "eval_problems.jsonl"), "w") as f:
    for i, p in enumerate(data.problem_set(seed, n, cfg)):
        f.write(json.dumps(data.eval_record(i, p, seed)) + "\n")
print(f"join_parts.sh: {n} held-out problems (seed {seed}) -> {dest}/eval_problems.jsonl")
PY
echo "join_parts.sh: $dest/hf ready"

# File: tests/engine/parallel/pad_heads_test.py
# tools/py/pad_heads.py makes the default model (9 query / 3 KV heads) splittable over 2 and 4
# ranks by adding heads that contribute nothing. Checks that it really changes nothing: the
# padded model's prompt logits at --tensor-parallel 1 and 2 equal the original's to fp32
# rounding and its greedy tokens are the same, and that a padding which would move the
# original heads to other KV heads is refused with a message naming the flags.
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.environ.get("LILSERVE_ROOT", os.getcwd())
LILCTL = os.environ["LILCTL"]
MODEL = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
PAD = os.path.join(ROOT, "tools", "py", "pad_heads.py")
IDS = [1, 4093, 314, 253, 2165, 2399, 28, 7536, 1267, 12022, 30, 1069, 11934, 46, 1035, 7420, 4436, 26, 28]


def fail(msg):
    print("FAIL:", msg, flush=True)
    sys.exit(1)


def logits(model, tp, out):
    p = subprocess.run([LILCTL, "logits", "--model", model, "--tensor-parallel", str(tp), "--ids", json.dumps(IDS),
                        "--greedy", "16", "--kv-mib", "32", "--out", out], capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        fail(f"lilctl logits {model} tp {tp}: {p.stderr}")
    return json.loads(p.stdout.strip().splitlines()[-1])["greedy"], np.fromfile(out, np.float32)


def main():
    with tempfile.TemporaryDirectory() as tmp:
        padded = os.path.join(tmp, "pad.gguf")
        p = subprocess.run([sys.executable, PAD, MODEL, padded, "--heads", "12", "--kv-heads", "4"],
                           capture_output=True, text=True, timeout=300)
        if p.returncode != 0:
            fail(f"pad_heads: {p.stderr}")
        print(p.stdout.strip())
        ref_tokens, ref = logits(MODEL, 1, os.path.join(tmp, "ref.bin"))
        for tp in (1, 2):
            tokens, got = logits(padded, tp, os.path.join(tmp, f"tp{tp}.bin"))
            rel = float(np.linalg.norm(got - ref) / np.linalg.norm(ref))
            print(f"padded 12/4 at --tensor-parallel {tp}: relative L2 {rel:.2e} to the 9/3 original, "
                  f"greedy {'equal' if tokens == ref_tokens else 'DIFFERENT'}")
            if got.shape != ref.shape or not rel < 1e-5:
                fail(f"tp {tp}: logits differ from the original: relative L2 {rel}")
            if tokens != ref_tokens:
                fail(f"tp {tp}: greedy {tokens} vs original {ref_tokens}")
        # 10 / 5 heads would put original query head 2 on KV head 1: refused.
        p = subprocess.run([sys.executable, PAD, MODEL, os.path.join(tmp, "bad.gguf"), "--heads", "10",
                            "--kv-heads", "5"], capture_output=True, text=True, timeout=300)
        if p.returncode == 0 or "--heads 10 / --kv-heads 5 must keep 3 query heads per KV head" not in p.stderr:
            fail(f"a regrouping padding was not refused clearly: rc {p.returncode} {p.stderr}")
    print("PASS pad_heads_test", flush=True)


if __name__ == "__main__":
    main()

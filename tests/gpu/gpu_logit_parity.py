"""File: tests/gpu/gpu_logit_parity.py
Full-model logits of the CUDA backend (bf16) against the CPU engine (fp32) and against
PyTorch/transformers on the GPU (bf16 and fp32) on the same checkpoints: random checkpoints of
every family at the shapes the CPU parity test uses, a full-size random SmolLM2-135M-shaped
checkpoint, and (when given) the default GGUF model against the CPU engine. Run on the device
machine by tests/gpu/run_on_gpu.sh (stage `parity`); prints one line per (model, prompt):
  rel = max|ours - ref| / max|ref| over all prompt positions.
Passes when CUDA vs fp32 references stays within the bf16 budget (REL_TOL) and CUDA vs
transformers-bf16 is no worse than transformers-bf16 vs transformers-fp32 times 2 (the two bf16
implementations round differently, but neither should drift further from fp32 than the other).
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from transformers import AutoModelForCausalLM

LILCTL = os.environ["LILCTL"]
REL_TOL = 5e-2  # bf16 weights + activations, fp32 accumulation and residual stream

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "engine", "parity"))
from logit_parity_test import FAMILIES as CPU_FAMILIES  # noqa: E402  (the CPU parity test's shapes)

FAMILIES = {k: CPU_FAMILIES[k] for k in ("llama3-8b", "qwen2.5-7b", "qwen3-8b")}
FAMILIES["smollm2-135m"] = []  # full size: 30 layers, hidden 576, 9/3 heads, d 64, vocab 49152
PROMPTS = [
    [1, 17, 300, 42, 9, 1000, 7, 7, 7, 3, 255],
    list(range(5, 70, 3)),
    [(i * 37) % 4000 for i in range(300)],
]


def ours(model, ids, device):
    with tempfile.NamedTemporaryFile(suffix=".bin") as f:
        out = subprocess.run([LILCTL, "logits", "--model", model, "--device", device, "--ids", json.dumps(ids),
                              "--greedy", "16", "--out", f.name], check=True, capture_output=True, text=True)
        meta = json.loads([l for l in out.stdout.splitlines() if l.startswith("{")][-1])  # after log lines
        return np.fromfile(f.name, dtype=np.float32).reshape(len(ids), meta["vocab"]), meta["greedy"]


def hf(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids], device="cuda")).logits[0].float().cpu().numpy()


def rel(a, b):
    v = min(a.shape[1], b.shape[1])
    return float(np.abs(a[:, :v] - b[:, :v]).max() / np.abs(b[:, :v]).max())


def main():
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for like, extra in FAMILIES.items():
            path = os.path.join(tmp, like)
            subprocess.run([LILCTL, "make-random-model", "--like", like, "--out", path, "--dtype", "bf16",
                            "--seed", "7"] + extra, check=True, capture_output=True)
            m32 = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).cuda().eval()
            m16 = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16).cuda().eval()
            for ids in PROMPTS:
                cuda_l, cuda_g = ours(path, ids, "cuda")
                cpu_l, cpu_g = ours(path, ids, "cpu")
                ref32, ref16 = hf(m32, ids), hf(m16, ids)
                r_cpu, r_hf32, r_hf16, r_16_32 = rel(cuda_l, cpu_l), rel(cuda_l, ref32), rel(cuda_l, ref16), rel(ref16, ref32)
                ok = r_cpu <= REL_TOL and r_hf32 <= REL_TOL and r_hf16 <= max(REL_TOL, 2 * r_16_32)
                failures += 0 if ok else 1
                print(f"{like:13s} len={len(ids):3d} cuda-vs-cpu={r_cpu:.2e} cuda-vs-hf32={r_hf32:.2e} "
                      f"cuda-vs-hf16={r_hf16:.2e} hf16-vs-hf32={r_16_32:.2e} greedy16-equal-cpu={cuda_g == cpu_g} "
                      f"{'ok' if ok else 'FAIL'}", flush=True)
            del m32, m16
            torch.cuda.empty_cache()
    gguf = os.environ.get("DEFAULT_GGUF")
    if gguf and os.path.exists(gguf):
        for ids in PROMPTS[:2] + [list(range(100, 160))]:
            cuda_l, cuda_g = ours(gguf, ids, "cuda")
            cpu_l, cpu_g = ours(gguf, ids, "cpu")
            r = rel(cuda_l, cpu_l)
            failures += 0 if r <= REL_TOL else 1
            print(f"default-gguf  len={len(ids):3d} cuda-vs-cpu={r:.2e} greedy16-equal-cpu={cuda_g == cpu_g} "
                  f"{'ok' if r <= REL_TOL else 'FAIL'}", flush=True)
    print(f"{failures} failure(s)" if failures else "all GPU logit parity checks passed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()

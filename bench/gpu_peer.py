# File: bench/gpu_peer.py
# The ceilings and the peer for bench/gpu_decode_bench.cc, measured with PyTorch on the same
# GPU in the same run: HBM read bandwidth (a 4 GiB sum, past L2), bf16 GEMM rate (8192^3),
# and HF transformers greedy decode ms/token at batch 1 after a --context token prompt.
import argparse
import time

import torch


def timed(fn, reps):
    fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / reps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--context", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=32)
    a = ap.parse_args()
    x = torch.empty(2 << 30, dtype=torch.bfloat16, device="cuda").uniform_()
    s = timed(lambda: x.sum(dtype=torch.float32), 10)
    hbm = x.numel() * 2 / s / 1e12
    print(f"HBM_TBS={hbm:.3f}  (read of {x.numel() * 2 / 2**30:.0f} GiB: {s * 1e3:.2f} ms)")
    del x
    n = 8192
    a_ = torch.randn(n, n, dtype=torch.bfloat16, device="cuda")
    b_ = torch.randn(n, n, dtype=torch.bfloat16, device="cuda")
    s = timed(lambda: a_ @ b_, 10)
    print(f"GEMM_TFLOPS={2 * n**3 / s / 1e12:.1f}  (bf16 8192^3)")
    del a_, b_
    from transformers import AutoModelForCausalLM
    t0 = time.perf_counter()
    m = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.bfloat16, device_map="cuda")
    print(f"HF load {time.perf_counter() - t0:.1f} s")
    ids = torch.randint(0, m.config.vocab_size, (1, a.context), device="cuda")
    with torch.no_grad():
        out = m(ids, use_cache=True)
        past = out.past_key_values
        tok = out.logits[:, -1:].argmax(-1)
        for _ in range(3):
            out = m(tok, past_key_values=past, use_cache=True)
            past, tok = out.past_key_values, out.logits[:, -1:].argmax(-1)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(a.steps):
            out = m(tok, past_key_values=past, use_cache=True)
            past, tok = out.past_key_values, out.logits[:, -1:].argmax(-1)
        torch.cuda.synchronize()
    print(f"HF_DECODE_MS={(time.perf_counter() - t0) / a.steps * 1e3:.3f}  (transformers eager, batch 1, context {a.context})")


if __name__ == "__main__":
    main()

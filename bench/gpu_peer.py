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


def sdpa_table(hbm):
    """SDPA on the same decode shapes as bench/gpu_attention_bench (32/8 heads, d 128), KV
    stored contiguously, copies rotated so every call reads HBM."""
    import torch.nn.functional as F
    print("| batch | context | SDPA us | SDPA TB/s | read TB/s | ratio |")
    print("|---|---|---|---|---|---|")
    for batch in (1, 16):
        for ctx in (4096, 8192, 16384, 32768):
            kv_bytes = batch * ctx * 8 * 128 * 2 * 2
            copies = max(2, min(8, (2 << 30) // kv_bytes))
            ks = [torch.randn(batch, 8, ctx, 128, dtype=torch.bfloat16, device="cuda") for _ in range(copies)]
            vs = [torch.randn_like(k) for k in ks]
            q = torch.randn(batch, 32, 1, 128, dtype=torch.bfloat16, device="cuda")
            i = [0]

            def call():
                j = i[0] % copies
                i[0] += 1
                return F.scaled_dot_product_attention(q, ks[j], vs[j], enable_gqa=True)

            t = min(timed(call, 20) for _ in range(3))
            tbs = kv_bytes / t / 1e12
            print(f"| {batch} | {ctx} | {t * 1e6:.1f} | {tbs:.3f} | {hbm:.3f} | {tbs / hbm:.2f} |")
            del ks, vs
            torch.cuda.empty_cache()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--context", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--attention", action="store_true",
                    help="also time SDPA decode attention (the peer of bench/gpu_attention_bench)")
    ap.add_argument("--no-hf", action="store_true", help="skip the transformers decode loop")
    ap.add_argument("--compile", action="store_true",
                    help="also time transformers generate with a static cache and torch.compile")
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
    if a.attention:
        sdpa_table(hbm)
    if a.no_hf:
        return
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
    if not a.compile:
        return
    # HF's fast decode: a static KV cache, with which generate() compiles the one-token forward
    # itself (torch.compile, CUDA graphs; wrapping m.forward by hand as older docs say fails
    # here with overwritten CUDA-graph outputs). generate(1 token) and generate(steps + 1) both
    # prefill the same prompt, so their difference over `steps` is the decode time per token.
    m.generation_config.cache_implementation = "static"

    def gen(n):
        with torch.no_grad():
            return m.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False)

    t0 = time.perf_counter()
    for _ in range(2):
        gen(a.steps + 1)
        gen(1)
    print(f"HF compile + warm-up {time.perf_counter() - t0:.1f} s")
    one, many = timed(lambda: gen(1), 3), timed(lambda: gen(a.steps + 1), 3)
    print(f"HF_COMPILE_MS={(many - one) / a.steps * 1e3:.3f}  (transformers static cache + torch.compile, "
          f"batch 1, context {a.context})")


if __name__ == "__main__":
    main()

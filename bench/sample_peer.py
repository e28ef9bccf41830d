# File: bench/sample_peer.py
# The PyTorch peer of bench/gpu_sample_bench.cu, on the same shapes (1, 32, 128 rows of
# 128,256 fp32 logits, N(0, 3^2)): argmax for greedy; for the sampled modes what transformers'
# logits processors do (divide by the temperature, torch.topk for top-k, a full sort + softmax
# + cumsum for top-p, softmax max for min-p), then softmax + torch.multinomial; top logprobs
# as log_softmax + topk. Median us per call over CUDA-synchronised batches. Usage: python bench/sample_peer.py
import time

import torch

VOCAB = 128256
MODES = [("greedy", 0.0, 1.0, 0.0, 0), ("temperature 0.8", 0.8, 1.0, 0.0, 0),
         ("top-p 0.9, T 0.8", 0.8, 0.9, 0.0, 0), ("top-k 50", 1.0, 1.0, 0.0, 50),
         ("min-p 0.05", 1.0, 1.0, 0.05, 0), ("top-k 400 + top-p 0.5", 1.3, 0.5, 0.0, 400),
         ("greedy + top 20 logprobs", 0.0, 1.0, 0.0, 0, 20), ("top-p 0.9, T 0.8 + top 5 logprobs", 0.8, 0.9, 0.0, 0, 5)]


def sample(logits, t, top_p, min_p, top_k, gen, logprobs=0):
    if logprobs > 0:  # what transformers / vLLM return: log_softmax of the raw logits, topk
        torch.topk(logits.log_softmax(dim=-1), logprobs, dim=-1)
    if t == 0.0:
        return logits.argmax(dim=-1)
    x = logits / t
    if top_k > 0:
        kth = torch.topk(x, top_k, dim=-1).values[:, -1:]
        x = x.masked_fill(x < kth, float("-inf"))
    if top_p < 1.0:
        s, idx = torch.sort(x, descending=False, dim=-1)
        cum = s.softmax(dim=-1).cumsum(dim=-1)
        drop = cum <= (1 - top_p)
        drop[:, -1] = False
        x = x.masked_fill(drop.scatter(1, idx, drop), float("-inf"))
    if min_p > 0.0:
        p = x.softmax(dim=-1)
        x = x.masked_fill(p < min_p * p.max(dim=-1, keepdim=True).values, float("-inf"))
    return torch.multinomial(x.softmax(dim=-1), 1, generator=gen)


def main():
    gen = torch.Generator(device="cuda").manual_seed(1)
    logits = 3.0 * torch.randn(128, VOCAB, device="cuda", generator=gen)
    print(f"PyTorch {torch.__version__}: median us per call, {VOCAB} logits a row (fp32)\n")
    print("| rows | mode | torch us |")
    print("|---|---|---|")
    for rows in (1, 32, 128):
        x = logits[:rows].contiguous()
        for name, t, top_p, min_p, top_k, *n in MODES:
            sample(x, t, top_p, min_p, top_k, gen, *n)
            torch.cuda.synchronize()
            times = []
            for _ in range(7):
                t0 = time.perf_counter()
                for _ in range(20):
                    sample(x, t, top_p, min_p, top_k, gen, *n)
                torch.cuda.synchronize()
                times.append((time.perf_counter() - t0) / 20)
            times.sort()
            print(f"| {rows} | {name} | {times[3] * 1e6:.1f} |")


if __name__ == "__main__":
    main()

"""File: tools/py/llamacpp_peer.py
The llama.cpp peer for bench/cpu_engine_bench: times prefill and greedy decode of a GGUF
model with llama-cpp-python (llama.cpp built from source by pip, `tools/setup.sh --bench`)
and prints one JSON object: {"prefill_tok_s": ..., "decode_tok_s": ..., "threads": ...}.
"""
import argparse
import json
import time

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--prompt-tokens", type=int, default=512)
    ap.add_argument("--decode-tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    import llama_cpp
    from llama_cpp import Llama
    llm = Llama(model_path=a.model, n_ctx=a.prompt_tokens + a.decode_tokens + 16,
                n_threads=a.threads, n_threads_batch=a.threads, n_batch=a.prompt_tokens,
                verbose=False, logits_all=False)
    vocab = llm.n_vocab()

    def last_logits():
        # The C API's logits of the last evaluated token (the Python wrapper's eval_logits
        # property copies the whole history and costs ~0.8 s per call).
        return np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1), shape=(vocab,))

    rng = np.random.default_rng(0)
    prompt = [int(x) for x in rng.integers(100, 40000, a.prompt_tokens)]
    llm.eval(prompt[:16])  # warm-up
    llm.reset()
    t0 = time.perf_counter()
    llm.eval(prompt)
    t1 = time.perf_counter()
    tok = int(np.argmax(last_logits()))
    t2 = time.perf_counter()
    for _ in range(a.decode_tokens):
        llm.eval([tok])
        tok = int(np.argmax(last_logits()))
    t3 = time.perf_counter()
    print(json.dumps({"prefill_tok_s": a.prompt_tokens / (t1 - t0),
                      "decode_tok_s": a.decode_tokens / (t3 - t2), "threads": a.threads}))


if __name__ == "__main__":
    main()

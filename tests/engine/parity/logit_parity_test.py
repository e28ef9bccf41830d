"""File: tests/engine/parity/logit_parity_test.py
Logit parity of the CPU engine with HuggingFace transformers (PyTorch, fp32):
small random checkpoints of every supported family (made by `lilctl make-random-model`) and
the default model, SmolLM2-135M-Instruct (GGUF, which transformers dequantizes itself).
Passes when max|logit diff| / max|logit| <= 1e-3 on every prompt position and the 32 greedy
tokens are identical.
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
ROOT = os.environ.get("LILSERVE_ROOT", ".")
TOL = 1e-3
GREEDY = 32

# Small shapes that keep every family's distinguishing features (GQA, qkv bias, q/k norm,
# llama3 rope scaling, tied embeddings) while running in seconds on two cores.
FAMILIES = {
    "llama3-8b": ["--layers", "2", "--hidden-size", "128", "--intermediate-size", "256",
                  "--heads", "4", "--kv-heads", "2", "--head-dim", "32", "--vocab-size", "4096"],
    "qwen2.5-7b": ["--layers", "2", "--hidden-size", "128", "--intermediate-size", "320",
                   "--heads", "4", "--kv-heads", "1", "--head-dim", "32", "--vocab-size", "4096"],
    "qwen3-8b": ["--layers", "2", "--hidden-size", "96", "--intermediate-size", "256",
                 "--heads", "4", "--kv-heads", "2", "--head-dim", "64", "--vocab-size", "4096"],
    "smollm2-135m": ["--layers", "3", "--hidden-size", "96", "--intermediate-size", "192",
                     "--heads", "3", "--kv-heads", "1", "--head-dim", "32", "--vocab-size", "4096"],
}

PROMPTS = [
    [1, 17, 300, 42, 9, 1000, 7, 7, 7, 3, 255],
    list(range(5, 70, 3)),
    [4000, 12, 12, 13, 99, 2048, 31, 8, 400, 401, 402, 403, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11,
     12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34],
    [77],
]


def lilserve_logits(model_path, ids):
    with tempfile.NamedTemporaryFile(suffix=".bin") as f:
        out = subprocess.run([LILCTL, "logits", "--model", model_path, "--ids", json.dumps(ids),
                              "--greedy", str(GREEDY), "--out", f.name],
                             check=True, capture_output=True, text=True)
        meta = json.loads(out.stdout)
        logits = np.fromfile(f.name, dtype=np.float32).reshape(len(ids), meta["vocab"])
    return logits, meta["greedy"]


def hf_logits(model, ids):
    with torch.no_grad():
        x = torch.tensor([ids])
        logits = model(x).logits[0].float().numpy()
        # Plain greedy argmax with a KV cache (generate() would suppress EOS under
        # min_new_tokens; the engine's logits tool never stops at EOS).
        out = model(x, use_cache=True)
        past, greedy = out.past_key_values, []
        for _ in range(GREEDY):
            tok = int(out.logits[0, -1].argmax())
            greedy.append(tok)
            out = model(torch.tensor([[tok]]), past_key_values=past, use_cache=True)
            past = out.past_key_values
    return logits, greedy


def check(name, model_path, hf_model, prompts):
    failures = 0
    for ids in prompts:
        ours, our_greedy = lilserve_logits(model_path, ids)
        ref, ref_greedy = hf_logits(hf_model, ids)
        vocab = min(ours.shape[1], ref.shape[1])
        rel = np.abs(ours[:, :vocab] - ref[:, :vocab]).max() / np.abs(ref).max()
        same = our_greedy == ref_greedy[:len(our_greedy)] and len(our_greedy) == GREEDY
        status = "ok" if rel <= TOL and same else "FAIL"
        print(f"{name:14s} prompt_len={len(ids):3d} rel_err={rel:.2e} greedy_equal={same} {status}")
        if status != "ok":
            failures += 1
            if not same:
                print(f"  ours: {our_greedy}\n  ref:  {ref_greedy}")
    return failures


def main():
    torch.manual_seed(0)
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for like, extra in FAMILIES.items():
            out = os.path.join(tmp, like)
            subprocess.run([LILCTL, "make-random-model", "--like", like, "--out", out,
                            "--dtype", "f32", "--seed", "7"] + extra, check=True)
            model = AutoModelForCausalLM.from_pretrained(out, torch_dtype=torch.float32).eval()
            failures += check(like, out, model, PROMPTS)
        # Mistral is Llama's architecture under another name: check the name is accepted.
        mistral = os.path.join(tmp, "mistral")
        subprocess.run([LILCTL, "make-random-model", "--like", "llama3-8b", "--out", mistral,
                        "--dtype", "f32", "--seed", "8"] + FAMILIES["llama3-8b"], check=True)
        cfg_path = os.path.join(mistral, "config.json")
        cfg = json.load(open(cfg_path))
        cfg.update({"architectures": ["MistralForCausalLM"], "model_type": "mistral",
                    "sliding_window": None, "rope_scaling": None})
        json.dump(cfg, open(cfg_path, "w"))
        model = AutoModelForCausalLM.from_pretrained(mistral, torch_dtype=torch.float32).eval()
        failures += check("mistral", mistral, model, PROMPTS[:2])

    gguf = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
    if os.path.exists(gguf):
        model = AutoModelForCausalLM.from_pretrained(os.path.dirname(gguf), gguf_file=os.path.basename(gguf),
                                                     torch_dtype=torch.float32).eval()
        smol_prompts = [[1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 2],  # arbitrary ids
                        [504, 3458, 282, 4649, 314, 216, 34, 41, 30, 28, 29, 30, 31],
                        list(range(100, 160))]
        failures += check("smollm2-gguf", gguf, model, smol_prompts)
    else:
        print("default model missing: run tools/setup.sh", file=sys.stderr)
        failures += 1
    if failures:
        print(f"{failures} parity check(s) failed")
        sys.exit(1)
    print("all logit parity checks passed")


if __name__ == "__main__":
    main()

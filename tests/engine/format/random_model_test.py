# File: tests/engine/format/random_model_test.py
# `lilctl make-random-model`: transformers must load each family's directory (no missing or
# unexpected keys) and run a forward pass; the tokenizer must load and round-trip; full-size
# tensor lists must equal transformers' own (meta device); our SafetensorsModel must read
# back exactly what safetensors.safe_open reads; output must not depend on thread count.
# Usage: random_model_test.py PATH/TO/format_probe   (env LILCTL: the lilctl binary)
import hashlib
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import transformers
from safetensors import safe_open
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

transformers.logging.set_verbosity_error()
PROBE = sys.argv[1]
LILCTL = os.environ["LILCTL"]
SMALL = ["--layers", "2", "--hidden-size", "64", "--intermediate-size", "96", "--heads", "4",
         "--kv-heads", "2", "--head-dim", "16", "--vocab-size", "700", "--max-position", "256"]
FAMILIES = {"llama3-8b": "LlamaForCausalLM", "qwen2.5-7b": "Qwen2ForCausalLM",
            "qwen3-8b": "Qwen3ForCausalLM", "smollm2-135m": "LlamaForCausalLM"}
TEXT = "The capital of France is Paris. 12 plus 30 is 42!"
failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print("FAIL:", msg)


def lilctl(*args, ok=True):
    r = subprocess.run([LILCTL, "make-random-model", *args], capture_output=True, text=True)
    if ok and r.returncode != 0:
        print("lilctl failed:", " ".join(args), r.stderr)
        sys.exit(1)
    return r


def digest(d):
    h = hashlib.sha256()
    for name in sorted(os.listdir(d)):
        with open(os.path.join(d, name), "rb") as f:
            h.update(name.encode() + f.read())
    return h.hexdigest()


def full_size_shapes(tmp, family):
    """Our tensor list for the real config equals transformers' parameters for it."""
    out = os.path.join(tmp, family + "-dry")
    r = lilctl("--like", family, "--out", out, "--dry-run")
    ours = {}
    for line in r.stdout.splitlines():
        name, dtype, *dims = line.split()
        ours[name] = [int(x) for x in dims]
    cfg = AutoConfig.from_pretrained(out)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg)
    theirs = {k: list(v.shape) for k, v in model.state_dict().items()}
    if cfg.tie_word_embeddings:
        theirs.pop("lm_head.weight", None)
    check(ours == theirs, f"{family}: tensor list differs from transformers: "
          f"only ours {sorted(set(ours) - set(theirs))[:5]}, only theirs {sorted(set(theirs) - set(ours))[:5]}, "
          f"shape diffs {[(k, ours[k], theirs[k]) for k in ours if k in theirs and ours[k] != theirs[k]][:5]}")
    n = sum(int(np.prod(s)) for s in ours.values())
    print(f"{family}: full size {n / 1e9:.3f} B params, {len(ours)} tensors, matches transformers")
    return cfg


def small_model(tmp, family, extra):
    out = os.path.join(tmp, family)
    lilctl("--like", family, "--out", out, "--seed", "7", *SMALL, *extra)
    model, info = AutoModelForCausalLM.from_pretrained(out, output_loading_info=True, torch_dtype=torch.float32)
    for k in ("missing_keys", "unexpected_keys", "mismatched_keys"):
        check(not info.get(k), f"{family}: {k} = {info.get(k)}")
    check(type(model).__name__ == FAMILIES[family], f"{family}: loaded as {type(model).__name__}")
    tok = AutoTokenizer.from_pretrained(out)
    ids = tok(TEXT)["input_ids"]
    check(tok.decode(ids, skip_special_tokens=True) == TEXT, f"{family}: decode(encode(text)) = {tok.decode(ids)!r}")
    check(len(ids) < len(TEXT.encode()) - 5, f"{family}: merges barely used ({len(ids)} ids for {len(TEXT)} bytes)")
    check(max(ids) < model.config.vocab_size, f"{family}: token id {max(ids)} >= vocab")
    if family == "llama3-8b":
        check(ids[0] == model.config.bos_token_id, f"{family}: bos not prepended: {ids[:3]}")
    chat = tok.apply_chat_template([{"role": "user", "content": "Hi there"}], add_generation_prompt=True,
                                   tokenize=False)
    marker = "<|start_header_id|>" if family == "llama3-8b" else "<|im_start|>"
    check(chat.count(marker) == 2, f"{family}: chat template output {chat!r}")
    eos = model.config.eos_token_id
    eos = eos if isinstance(eos, list) else [eos]
    check(tok.eos_token_id in eos, f"{family}: tokenizer eos {tok.eos_token_id} not in config eos {eos}")
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits
    check(list(logits.shape) == [1, len(ids), 700], f"{family}: logits shape {list(logits.shape)}")
    check(bool(torch.isfinite(logits).all()), f"{family}: non-finite logits")
    sd = model.state_dict()
    emb = sd["model.embed_tokens.weight"].float()
    norm = sd["model.layers.0.input_layernorm.weight"].float()
    check(abs(emb.std().item() - 0.02) < 0.002 and abs(emb.mean().item()) < 0.001,
          f"{family}: embedding std {emb.std().item():.4f} mean {emb.mean().item():.5f}")
    check(abs(norm.mean().item() - 1.0) < 0.01, f"{family}: norm mean {norm.mean().item():.4f}")
    print(f"{family}: transformers loads it, {len(ids)} tokens, logits std {logits.std().item():.4f}")
    return out


def readback(tmp, model_dir, label):
    """SafetensorsModel == safe_open, bit for bit (via F32 and BF16 dumps)."""
    out = os.path.join(tmp, "probe-" + label)
    os.makedirs(out)
    r = subprocess.run([PROBE, "safetensors", model_dir, out, "--bf16"], capture_output=True, text=True)
    check(r.returncode == 0, f"{label}: format_probe failed: {r.stderr}")
    if r.returncode != 0:
        return
    meta = json.load(open(os.path.join(out, "meta.json")))
    ref = {}
    for f in sorted(x for x in os.listdir(model_dir) if x.endswith(".safetensors")):
        with safe_open(os.path.join(model_dir, f), "pt") as sf:
            for k in sf.keys():
                ref[k] = sf.get_tensor(k)
    check(len(meta["tensors"]) == len(ref), f"{label}: {len(meta['tensors'])} tensors vs {len(ref)}")
    for i, t in enumerate(meta["tensors"]):
        want = ref[t["name"]]
        check(t["shape"] == list(want.shape), f"{label}: {t['name']} shape {t['shape']} vs {list(want.shape)}")
        got = np.fromfile(os.path.join(out, f"{i}.f32"), dtype=np.float32).reshape(t["shape"])
        check(np.array_equal(got, want.float().numpy()), f"{label}: {t['name']} F32 values differ")
        if want.dtype == torch.bfloat16:
            gotb = np.fromfile(os.path.join(out, f"{i}.bf16"), dtype=np.uint16).reshape(t["shape"])
            check(np.array_equal(gotb, want.view(torch.int16).numpy().view(np.uint16)), f"{label}: {t['name']} BF16 bits")
    print(f"{label}: SafetensorsModel reads {len(ref)} tensors from {len(meta['files'])} file(s) exactly as safe_open")


with tempfile.TemporaryDirectory() as tmp:
    for family in FAMILIES:
        cfg = full_size_shapes(tmp, family)
    cfg = AutoConfig.from_pretrained(os.path.join(tmp, "llama3-8b-dry"))
    rs = cfg.rope_scaling or getattr(cfg, "rope_parameters", {})
    check(rs.get("rope_type") == "llama3" and rs.get("factor") == 8.0, f"llama3 rope scaling {rs}")
    check(AutoConfig.from_pretrained(os.path.join(tmp, "smollm2-135m-dry")).tie_word_embeddings, "smollm2 tied")
    dirs = {}
    for family in FAMILIES:
        extra = ["--shard-size-mb", "0.05"] if family == "qwen2.5-7b" else []
        if family == "qwen3-8b":
            extra = ["--dtype", "f32"]
        dirs[family] = small_model(tmp, family, extra)
    check(os.path.exists(os.path.join(dirs["qwen2.5-7b"], "model.safetensors.index.json")), "qwen2.5 not sharded")
    readback(tmp, dirs["qwen2.5-7b"], "sharded-bf16")
    readback(tmp, dirs["qwen3-8b"], "single-f32")
    a, b, c = (os.path.join(tmp, x) for x in ("det-a", "det-b", "det-c"))
    lilctl("--like", "smollm2-135m", "--out", a, "--seed", "3", "--threads", "1", *SMALL)
    lilctl("--like", "smollm2-135m", "--out", b, "--seed", "3", "--threads", "3", *SMALL)
    lilctl("--like", "smollm2-135m", "--out", c, "--seed", "4", *SMALL)
    check(digest(a) == digest(b), "output depends on the thread count")
    check(digest(a) != digest(c), "seed does not change the weights")
    r = lilctl("--like", "llama3-8b", "--out", os.path.join(tmp, "bad"), "--vocab-size", "100", ok=False)
    check(r.returncode != 0 and "vocab size 100" in r.stderr, f"small vocab error: {r.stderr!r}")
    r = lilctl("--like", "gpt9", "--out", os.path.join(tmp, "bad"), ok=False)
    check(r.returncode != 0 and "unknown model family" in r.stderr, f"unknown family error: {r.stderr!r}")
    r = lilctl("--like", "qwen3-8b", "--out", os.path.join(tmp, "bad"), "--heads", "5", "--kv-heads", "2", ok=False)
    check(r.returncode != 0 and "multiple of num_kv_heads" in r.stderr, f"heads error: {r.stderr!r}")

if failures:
    print(f"{len(failures)} check(s) failed")
    sys.exit(1)
print("OK: random checkpoints load in transformers and read back exactly")

# File: tests/eval/lilchain_export_test.py
# The LilChain pipeline (models/lilchain) at toy scale on CPU, so the GPU run works the first
# time: the tokenizer keeps every node name one token; an export loads in transformers and in
# lilserve with our model's logits; the chat template renders the same in Python,
# transformers and lilserve; our batched greedy decoder (dense, and sink+window with a window
# covering everything) equals transformers' generate; train.py --tiny runs end to end; and its
# held-out problem file runs through a daemon serving its export with `lilctl eval`.
import gzip
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.environ.get("LILSERVE_ROOT", os.getcwd())
sys.path.insert(0, os.path.join(ROOT, "models", "lilchain"))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
import numpy as np  # noqa: E402
import torch  # noqa: E402

import lilchain_data as data  # noqa: E402
import lilchain_model as lm  # noqa: E402
import lilchain_tokenizer as ltok  # noqa: E402
import prepare_english  # noqa: E402
from lilserve_harness import LILSERVE, check, free_port  # noqa: E402

LILCTL = os.environ.get("LILCTL") or os.path.join(os.environ.get("LILSERVE_BUILD", "build"), "tools", "lilctl")


def export_random_model(tmp):
    paragraphs = prepare_english.brown_paragraphs()[:400]
    tok = ltok.build(paragraphs, vocab_size=4096, num_problems=300)
    info = ltok.check(tok)
    check(info["names_not_single_token"] == 0, f"node names split into several tokens: {info}")
    torch.manual_seed(0)
    cfg = lm.Config(vocab_size=tok.get_vocab_size(), hidden_size=64, num_layers=2, num_heads=4,
                    num_kv_heads=4, intermediate_size=128)
    model = lm.LilChainLM(cfg).eval()
    with torch.no_grad():  # larger weights than the init so that logits are far apart
        for p in model.parameters():
            p.mul_(4.0 if p.dim() >= 2 else 1.0)
    out = os.path.join(tmp, "hf")
    eot, im_end = tok.token_to_id(data.EOT), tok.token_to_id(data.IM_END)
    lm.export_hf(model, tok, out, data.CHAT_TEMPLATE, [im_end, eot], eot)
    return out, tok


def check_export(out, tok):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    ours = lm.load_exported(out)  # bf16 weights as exported, computed in fp32
    hf = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    hf_tok = AutoTokenizer.from_pretrained(out)
    problems = data.problem_set(11, 3, data.ChainConfig(4, 10, 2, 3))
    msgs = [[{"role": "user", "content": p["prompt"]}] for p in problems]
    for m in msgs:
        a = hf_tok.apply_chat_template(m, tokenize=False, add_generation_prompt=True)
        check(a == data.render_chat(m), f"transformers renders {a!r}, render_chat {data.render_chat(m)!r}")
    prompts = [tok.encode(data.render_chat(m), add_special_tokens=False).ids for m in msgs]
    check(hf_tok(data.render_chat(msgs[0]), add_special_tokens=False).input_ids == prompts[0],
          "transformers' tokenizer gives other ids")
    ids = torch.tensor([prompts[0]])
    with torch.no_grad():
        a = ours.logits(ours.hidden(ids))[0]
        b = hf(ids).logits[0]
    err = float((a - b).abs().max())
    check(err < 1e-4, f"our logits vs transformers: max difference {err}")
    # lilserve's CPU engine on the same export.
    lg = os.path.join(os.path.dirname(out), "logits.bin")
    p = subprocess.run([LILCTL, "logits", "--model", out, "--ids", json.dumps(prompts[0]), "--out", lg],
                       capture_output=True, text=True, timeout=120)
    check(p.returncode == 0, f"lilctl logits failed: {p.stderr}")
    got = np.fromfile(lg, dtype=np.float32).reshape(len(prompts[0]), -1)
    err = float(np.abs(got - a.numpy()).max())
    check(err < 1e-3, f"lilserve logits vs ours: max difference {err}")
    p = subprocess.run([LILCTL, "generate", "--model", out, "--chat", "--prompt", problems[0]["prompt"],
                        "--max-tokens", "2"], capture_output=True, text=True, timeout=120)
    check(p.returncode == 0 and f"[{len(prompts[0])} prompt tokens" in p.stderr,
          f"lilserve's chat template: {p.stderr!r} (want {len(prompts[0])} prompt tokens)")
    # Greedy decoding: ours (batched, left padded) vs transformers, one prompt at a time.
    stops = [tok.token_to_id(data.IM_END), tok.token_to_id(data.EOT)]
    dense = lm.greedy_decode(ours, prompts, 24, stops)
    full_window = lm.greedy_decode(ours, prompts, 24, stops, sink=4, window=4096)
    check(dense == full_window, "sink+window covering every token differs from dense")
    for p_ids, got in zip(prompts, dense):
        with torch.no_grad():
            ref = hf.generate(torch.tensor([p_ids]), max_new_tokens=24, do_sample=False,
                              eos_token_id=stops, pad_token_id=stops[1])[0, len(p_ids):].tolist()
        ref = ref[:next((i for i, t in enumerate(ref) if t in stops), len(ref))]
        check(got == ref, f"greedy: ours {got}, transformers {ref}")
    print(f"ok export: transformers and lilserve load it, logits and greedy tokens agree", flush=True)


def check_tiny_training(tmp):
    english = os.path.join(tmp, "english.txt.gz")  # a slice of what prepare_english.py writes
    with gzip.open(english, "wt", encoding="utf-8") as f:
        f.write("\n".join(prepare_english.brown_paragraphs()[:600]) + "\n")
    out, pack = os.path.join(tmp, "run"), os.path.join(tmp, "pack")
    # Small parts, so that the weights (~0.6 MB) are split in several as on the GPU (15 MiB).
    env = dict(os.environ, OUT=out, PYTHON=sys.executable, LILCHAIN_ENGLISH=english, OMP_NUM_THREADS="1",
               LILCHAIN_PART_SIZE="200K")
    run = os.path.join(out, "lilchain")
    p = subprocess.run([os.path.join(ROOT, "models", "lilchain", "train_on_gpu.sh"), "--tiny",
                        "--train-seconds", "4", "--workers", "1", "--eval-problems", "4",
                        "--out", run, "--pack", pack],
                       capture_output=True, text=True, timeout=600, env=env)
    check(p.returncode == 0, f"train_on_gpu.sh --tiny failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    check_pack(run, pack, tmp)
    for name in ("hf/config.json", "hf/model.safetensors", "hf/tokenizer.json", "hf/tokenizer_config.json",
                 "hf/generation_config.json", "hf/MODEL_CARD.md", "metrics.json", "train.log",
                 "eval_problems.jsonl", "eval_outputs.jsonl"):
        check(os.path.getsize(os.path.join(run, name)) > 0, f"{name} missing or empty")
    with open(os.path.join(run, "metrics.json")) as f:
        m = json.load(f)
    check(m["train"]["steps"] > 0 and m["eval_full_attention"]["problems"] == 4 and m["sparse_preview"],
          f"metrics.json: {json.dumps(m)[:600]}")
    print(f"ok train_on_gpu.sh --tiny: {m['train']['steps']} steps", flush=True)
    return run


def check_pack(run, pack, tmp):
    """--pack: few files, each small, that join_parts.sh turns back into the same hf/ directory."""
    names = sorted(os.listdir(pack))
    parts = [n for n in names if n.startswith("model.safetensors.part-")]
    check(len(names) <= 8 and len(parts) >= 2 and {"metrics.json", "train.log", "lilchain-small.tar.gz"} <= set(names),
          f"pack holds {names}")
    check(all(os.path.getsize(os.path.join(pack, n)) <= 200 * 1024 for n in parts), "a part is over the size limit")
    dest = os.path.join(tmp, "joined")
    p = subprocess.run([os.path.join(ROOT, "models", "lilchain", "join_parts.sh"), pack, dest],
                       capture_output=True, text=True, timeout=60, env=dict(os.environ, PYTHON=sys.executable))
    check(p.returncode == 0, f"join_parts.sh failed:\n{p.stdout}\n{p.stderr}")
    for name in ("model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json",
                 "generation_config.json", "MODEL_CARD.md"):
        with open(os.path.join(run, "hf", name), "rb") as a, open(os.path.join(dest, "hf", name), "rb") as b:
            check(a.read() == b.read(), f"joined hf/{name} differs from the run's")
    with open(os.path.join(run, "eval_problems.jsonl"), "rb") as a, \
            open(os.path.join(dest, "eval_problems.jsonl"), "rb") as b:
        check(a.read() == b.read(), "join_parts.sh regenerated other held-out problems than the run's")
    with open(os.path.join(dest, "eval_outputs.jsonl")) as f:
        outs = [json.loads(line) for line in f]
    check(len(outs) == 4 and all("text" in r for r in outs if not r["correct"]),
          f"eval_outputs.jsonl: {outs[:2]}")
    print(f"ok --pack: {len(names)} files, {len(parts)} weight parts, joined = the run's hf/", flush=True)


def check_eval_on_export(run, tmp):
    """The daemon serves the tiny export; lilctl eval runs two held-out problems."""
    port = free_port()
    log = open(os.path.join(tmp, "lilserve.log"), "w")
    d = subprocess.Popen([LILSERVE, "--model", os.path.join(run, "hf"), "--host", "127.0.0.1", "--port",
                          str(port), "--metrics-host", "127.0.0.1", "--metrics-port", str(free_port())],
                         stdout=log, stderr=subprocess.STDOUT)
    try:
        out = os.path.join(tmp, "eval")
        for _ in range(200):
            h = subprocess.run([LILCTL, "health", "--server", f"127.0.0.1:{port}"], capture_output=True, text=True)
            if h.stdout.strip() == "SERVING":
                break
            check(d.poll() is None, f"lilserve exited: {open(log.name).read()[-2000:]}")
            import time
            time.sleep(0.1)
        p = subprocess.run([LILCTL, "eval", os.path.join(run, "eval_problems.jsonl"), "--server",
                            f"127.0.0.1:{port}", "--out", out, "--limit", "2", "--sparse-modes", "dense,sink",
                            "--budgets", "32", "--sink-tokens", "16", "--monitor-modes", "off,conclude",
                            "--conclusion-text", data.CONCLUSION_TEXT, "--max-tokens", "40",
                            "--monitor-interval-tokens", "16"],
                           capture_output=True, text=True, timeout=300)
        check(p.returncode == 0, f"lilctl eval on the export failed:\n{p.stderr}")
        with open(os.path.join(out, "requests.jsonl")) as f:
            reqs = [json.loads(line) for line in f]
        check(len(reqs) == 8 and all(r["ok"] and r["scored"] for r in reqs), f"requests: {reqs[:2]}")
        print(f"ok lilctl eval on the export: {len(reqs)} requests", flush=True)
    finally:
        d.terminate()
        d.wait(60)


def main():
    tmp = tempfile.mkdtemp(prefix="lilchain_")
    out, tok = export_random_model(tmp)
    check_export(out, tok)
    run = check_tiny_training(tmp)
    check_eval_on_export(run, tmp)
    print("PASS", flush=True)


if __name__ == "__main__":
    main()

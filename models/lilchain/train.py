# File: models/lilchain/train.py
# Trains LilChain end to end within a wall-clock budget and writes everything under --out:
#   tokenizer (BPE, trained here) -> model (Llama, PyTorch, bf16 autocast, fresh data from
#   worker processes, one problem per row, rows of similar length batched together) ->
#   HuggingFace export (hf/) -> exact-answer accuracy with transformers greedy decoding on
#   held-out problems (another seed) -> a sink+window preview with our own decoder and the
#   monitor's rule replayed in Python -> metrics.json, MODEL_CARD.md, logs.
# Entry point: models/lilchain/train_on_gpu.sh (GPU) or `--tiny` (a CPU smoke run).
import argparse
import json
import math
import multiprocessing
import os
import platform
import random
import re
import statistics
import sys
import time
import zlib

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lilchain_data as data  # noqa: E402
import lilchain_model as lm  # noqa: E402
import lilchain_tokenizer as ltok  # noqa: E402

T0 = time.time()


def log(msg, **kv):
    line = f"[{time.time() - T0:7.1f}s] {msg}"
    if kv:
        line += " " + " ".join(f"{k}={v}" for k, v in kv.items())
    print(line, flush=True)


# ----------------------------------------------------------------------------------------
# Training data: worker processes generate, tokenize and batch rows
# ----------------------------------------------------------------------------------------

class RowStream(torch.utils.data.IterableDataset):
    """Endless batches (input ids, labels) of about `batch_tokens` tokens (padding included).
    One document per row, right-padded (causal attention never sees the padding), so a
    problem never attends to another problem's facts."""

    def __init__(self, tok_json, paragraphs, cfg, batch_tokens, max_len, seed, mix, pool=768,
                 stages=None, stage=None):
        self.tok_json, self.paragraphs, self.cfg = tok_json, paragraphs, cfg
        self.batch_tokens, self.max_len, self.seed, self.mix, self.pool = (
            batch_tokens, max_len, seed, mix, pool)
        # The gated curriculum: `stages` (ChainConfigs, the last = cfg) and `stage`, a
        # multiprocessing.Value the training loop advances (shared memory; the workers read
        # it before each pool of samples, so a change reaches the batches within a few steps).
        self.stages, self.stage = stages, stage

    def _task(self):
        if not self.stages or self.stage is None:
            return self.cfg
        return self.stages[min(self.stage.value, len(self.stages) - 1)]

    def _mix(self):
        """No English in the first stage (its share goes half to the copy drill, which forms
        the induction head, and half to the recall drill, which puts it to the task's lookup)
        and a quarter of its share in the later ones before the last (the rest to the
        problems): an early stage's problems are ~60 tokens and an English row ~400-600, so at
        the full share English would be two thirds of the early stages' tokens (and steps),
        which are there to form the lookup. The last stage has the full mix."""
        if not self.stages or self.stage is None or self.stage.value >= len(self.stages) - 1:
            return self.mix
        keep = 0.0 if self.stage.value == 0 else 0.25
        english = self.mix["english_chat"] + (1.0 - sum(self.mix.values()))  # chats + raw
        mix = dict(self.mix, english_chat=self.mix["english_chat"] * keep)
        if self.stage.value == 0:
            mix["copy"] = mix.get("copy", 0.0) + english / 2
            mix["recall"] = mix.get("recall", 0.0) + english / 2
        else:
            mix["problem"] += english * (1.0 - keep)
        return mix

    def _sample(self, rng, task, mix):
        """(head, tail, kind): kind "chat" (loss on the tail and <|im_end|>), "recall" (loss
        on the looked-up names of the tail only), "copy" (loss on the tail but its first
        token, a free pick; not on <|im_end|>) or "raw" (English, loss everywhere)."""
        r = rng.random()
        chat = lambda p: data.render_chat([{"role": "user", "content": p["prompt"]}])  # noqa: E731
        if r < mix["problem"]:
            p = data.make_problem(rng, task)
            return chat(p), p["cot"], "chat"
        r -= mix["problem"]
        if r < mix.get("recall", 0.0):
            # As many facts as the stage's prompts hold lines (so the drill grows with it; 4-8
            # in stage 0: a 24-fact drill did not even learn "one of the prompt's names" in 600
            # CPU steps, a 4-fact one did in 200; docs/LIL.md).
            p = data.make_recall(rng, task.min_links, task.max_links * (2 if task.max_chains > 1 else 1))
            return chat(p), p["cot"], "recall"
        r -= mix.get("recall", 0.0)
        if r < mix.get("copy", 0.0):
            p = data.make_copy(rng)
            return chat(p), p["cot"], "copy"
        r -= mix.get("copy", 0.0)
        if r < mix["english_chat"]:
            p = data.make_english_chat(rng, self.paragraphs)
            return chat(p), p["cot"], "chat"
        return "", data.english_span(rng, self.paragraphs, 800, 4000), "raw"

    def __iter__(self):
        from tokenizers import Tokenizer
        info = torch.utils.data.get_worker_info()
        wid = info.id if info else 0
        rng = random.Random(self.seed * 1000 + wid)
        tok = Tokenizer.from_str(self.tok_json)
        im_end, eot = tok.token_to_id(data.IM_END), tok.token_to_id(data.EOT)
        names = set(name_token_ids(tok))  # " name", the one token of a node name
        numbers = set(number_token_ids(tok))
        while True:
            task, mix = self._task(), self._mix()
            samples = [self._sample(rng, task, mix) for _ in range(self.pool)]
            heads = tok.encode_batch([s[0] for s in samples], add_special_tokens=False)
            tails = tok.encode_batch([s[1] for s in samples], add_special_tokens=False)
            rows = []
            for (_, _, kind), h, t in zip(samples, heads, tails):
                if kind == "chat":  # loss on the answer and its end token only
                    ids = h.ids + t.ids + [im_end]
                    learn = [0] * len(h.ids) + [1] * (len(t.ids) + 1)
                elif kind == "copy":  # loss on the copied names but the first (the model's
                    # pick) and not on <|im_end|>: with the end scored too, no CPU probe formed
                    # the copy in 1,500 steps; without it, at ~400 (docs/LIL.md, v4)
                    ids = h.ids + t.ids + [im_end]
                    learn = [0] * (len(h.ids) + 1) + [1] * (len(t.ids) - 1) + [0]
                elif kind == "recall":  # loss on the facts only (the first names are queries)
                    ids = h.ids + t.ids + [im_end]
                    learn = [0] * len(h.ids) + lookup_targets(t.ids, names, numbers, h.ids[-1]) + [0]
                else:  # raw English: loss everywhere
                    ids = [eot] + t.ids
                    learn = [0] + [1] * len(t.ids)
                rows.append((ids[:self.max_len], learn[:self.max_len]))
            rows.sort(key=lambda r: len(r[0]))
            batches, cur = [], []
            for r in rows:
                width = -(-len(r[0]) // 64) * 64
                if cur and (len(cur) + 1) * width > self.batch_tokens:
                    batches.append(cur)
                    cur = []
                cur.append(r)
            if cur:
                batches.append(cur)
            rng.shuffle(batches)
            for b in batches:
                yield self._tensors(b, eot)

    @staticmethod
    def _tensors(rows, pad):
        width = max(len(r[0]) for r in rows)
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        labels = torch.full((len(rows), width), -100, dtype=torch.long)
        for i, (r, learn) in enumerate(rows):
            ids[i, :len(r)] = torch.tensor(r)
            lab = torch.tensor(r)
            lab[torch.tensor(learn) == 0] = -100
            labels[i, :len(r)] = lab
        # Predict token j+1 at position j.
        return ids[:, :-1].contiguous(), labels[:, 1:].contiguous()


def transplant_embeddings(model_dir, tokenizer, dev):
    """The exported model in `model_dir` with its (tied) embedding re-indexed to `tokenizer`:
    a token whose string the old vocabulary also holds keeps its row; any other token gets
    the mean of the old rows of its text's pieces under the old tokenizer (" 47" from " 4"
    and "7"), so new tokens start distinct and near what the layers already read; a text
    the old tokenizer cannot encode gets the mean row. The layers are unchanged.
    Returns (model, counts)."""
    from tokenizers import Tokenizer
    old_tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    old_model = lm.load_exported(model_dir, "cpu")
    old = old_model.model.embed_tokens.weight.data
    old_vocab = old_tok.get_vocab()
    rows = torch.empty(tokenizer.get_vocab_size(), old.shape[1])
    kept = pieced = 0
    for text_id, i in tokenizer.get_vocab().items():
        j = old_vocab.get(text_id)
        if j is not None:
            rows[i], kept = old[j], kept + 1
            continue
        pieces = old_tok.encode(tokenizer.decode([i], skip_special_tokens=False),
                                add_special_tokens=False).ids
        rows[i] = old[pieces].mean(0) if pieces else old.mean(0)
        pieced += 1
    c = old_model.cfg
    cfg = lm.Config(tokenizer.get_vocab_size(), c.hidden_size, c.num_layers, c.num_heads,
                    c.num_kv_heads, c.intermediate_size, c.rope_theta,
                    c.max_position_embeddings, c.rms_norm_eps)
    model = lm.LilChainLM(cfg)
    state = dict(old_model.state_dict())
    state["model.embed_tokens.weight"] = rows
    model.load_state_dict(state)
    return model.to(dev), {"rows_kept": kept, "rows_from_pieces": pieced}


# ----------------------------------------------------------------------------------------
# Evaluation helpers
# ----------------------------------------------------------------------------------------

def name_token_ids(tok):
    """Token ids of " name", the one token of each node name (the task writes every name after
    a space)."""
    out = []
    for n in data.NAMES:
        ids = tok.encode(" " + n).ids
        if len(ids) == 1:
            out.append(ids[0])
    return out


def number_token_ids(tok):
    """Token ids made of digits, with or without one leading space ("7", " 47": a chain's
    number is one such token)."""
    return [i for t, i in tok.get_vocab().items() if re.fullmatch("\u0120?[0-9]+", t)]


def is_fact(x, p, names, numbers):
    """Whether token x, after token p, is a looked-up fact: a name right after a name (the
    second name of a line " from to"; the first is the query, a copy of the previous line's
    fact or of the question), or a number right after a name (a value line " name 47")."""
    return p in names and (x in names or x in numbers)


def lookup_targets(ids, names, numbers, before):
    """1 for each token of `ids` that is a looked-up fact (is_fact). `before` is the token
    preceding ids[0]."""
    prev = [before] + list(ids[:-1])
    return [int(is_fact(x, p, names, numbers)) for x, p in zip(ids, prev)]


def extract(text):
    m = re.search(data.ANSWER_REGEX, text)
    return m.group(1) if m else None


def deflate_size(text):
    c = zlib.compressobj(6, zlib.DEFLATED, -15, 8)
    return len(c.compress(text.encode("utf-8")) + c.flush())


def monitor_stop(tok, ids, interval=250, min_gain=20):
    """The daemon's rule replayed on whole intervals: the generated-token count at which it
    would stop, or None."""
    last = None
    for n in range(interval, len(ids) + 1, interval):
        size = deflate_size(tok.decode(ids[:n]))
        if last is not None and size - last < min_gain:
            return n
        last = size
    return None


def teacher_forced_accuracy(model, batch, dev, lookup_ids=None):
    """Share of answer tokens predicted exactly (a cheap signal while training); with
    `lookup_ids` (two bool tensors over the vocabulary: the name tokens, the number tokens)
    also the share among the looked-up facts (is_fact): names at positions whose input is a
    name (the second name of a line, predicted from the first) and numbers after a name (a
    chain's number), which need the induction lookup. The first name of a line (input: the
    line end) is a copy of the previous line's fact, not a lookup."""
    ids, labels = (t.to(dev) for t in batch)
    with torch.no_grad(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
        h = model.hidden(ids)
        keep = labels != -100
        pred = model.logits(h[keep]).argmax(-1)
    ok = pred == labels[keep]
    acc = float(ok.float().mean())
    if lookup_ids is None:
        return acc
    names, numbers = (t.to(dev) for t in lookup_ids)
    label, given = labels[keep], ids[keep]
    is_lookup = names[given] & (names[label] | numbers[label])  # is_fact
    return acc, float(ok[is_lookup].float().mean()) if bool(is_lookup.any()) else float("nan")


def hf_eval(hf_dir, problems, dev, batch_size, max_new_tokens, on_batch=None):
    """transformers greedy decoding of every problem; returns per-problem records.
    `on_batch(records so far)` runs after each batch (partial results survive a time-out)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(hf_dir)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.bfloat16).to(dev).eval()
    msgs = [[{"role": "user", "content": p["prompt"]}] for p in problems]
    prompts = [tok.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in msgs]
    mismatch = sum(a != data.render_chat(m) for a, m in zip(prompts, msgs))
    if mismatch:
        raise RuntimeError(f"transformers renders {mismatch} chat prompts differently from render_chat")
    eos = [tok.convert_tokens_to_ids(data.IM_END), tok.convert_tokens_to_ids(data.EOT)]
    order = sorted(range(len(problems)), key=lambda i: len(prompts[i]))
    records = [None] * len(problems)
    for s in range(0, len(order), batch_size):
        idx = order[s:s + batch_size]
        enc = tok([prompts[i] for i in idx], add_special_tokens=False, padding=True,
                  return_tensors="pt").to(dev)
        with torch.no_grad():
            out = model.generate(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                                 max_new_tokens=max_new_tokens, do_sample=False,
                                 eos_token_id=eos, pad_token_id=eos[1])
        new = out[:, enc["input_ids"].shape[1]:].tolist()
        for i, ids in zip(idx, new):
            n = next((k for k, t in enumerate(ids) if t in eos), len(ids))
            text = tok.decode(ids[:n], skip_special_tokens=True)
            got = extract(text)
            records[i] = {"index": i, "links": problems[i]["links"], "answer": problems[i]["answer"],
                          "predicted": got, "correct": got == problems[i]["answer"], "tokens": n,
                          "hit_max": n == len(ids) and n == max_new_tokens,
                          "exact_cot": text == problems[i]["cot"], "text": text}
        log("hf eval", done=min(s + batch_size, len(order)), of=len(order))
        if on_batch:
            on_batch([r for r in records if r is not None])
    return records


def sparse_preview(model, tok, problems, dev, windows, sink, max_new_tokens, deadline, batch):
    """Our decoder, dense and sink+window, on the same problems, plus the monitor replay."""
    stops = [tok.token_to_id(data.IM_END), tok.token_to_id(data.EOT)]
    prompts = [tok.encode(data.render_chat([{"role": "user", "content": p["prompt"]}]),
                          add_special_tokens=False).ids for p in problems]
    rows, last = [], 0.0
    for window in [None] + list(windows):
        if time.time() + last > deadline:  # a pass takes about as long as the one before
            log("sparse preview: out of time, skipping", window=window)
            continue
        t = time.time()
        outs = []
        for s in range(0, len(prompts), batch):
            outs += lm.greedy_decode(model, prompts[s:s + batch], max_new_tokens, stops,
                                     sink=None if window is None else sink,
                                     window=None if window is None else window - sink)
        correct, tokens, hit, mon_correct, mon_tokens, stalls = 0, [], 0, 0, [], 0
        for p, ids in zip(problems, outs):
            text = tok.decode(ids)
            ok = extract(text) == p["answer"]
            correct += ok
            tokens.append(len(ids))
            hit += len(ids) == max_new_tokens
            stop = monitor_stop(tok, ids)
            stalls += stop is not None
            mon_tokens.append(stop if stop is not None else len(ids))
            mon_correct += ok and stop is None
        row = {"attention": "dense" if window is None else f"sink{sink}+window{window - sink}",
               "budget_tokens": window, "problems": len(problems),
               "accuracy": correct / len(problems), "mean_tokens": statistics.mean(tokens),
               "median_tokens": statistics.median(tokens), "hit_max_tokens_rate": hit / len(problems),
               "monitor_stop_rate": stalls / len(problems),
               "monitor_enforce_accuracy": mon_correct / len(problems),
               "monitor_enforce_mean_tokens": statistics.mean(mon_tokens),
               "seconds": round(time.time() - t, 1)}
        last = time.time() - t
        rows.append(row)
        log("sparse preview", **{k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()})
    return rows


# ----------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------

def parse_args():
    ap = argparse.ArgumentParser(description="Train LilChain (see models/lilchain/README.md)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--english", required=True, help="english.txt.gz from prepare_english.py")
    ap.add_argument("--train-seconds", type=float, default=400)
    ap.add_argument("--deadline-seconds", type=float, default=555,
                    help="optional steps (the sparse preview) are skipped past this point")
    ap.add_argument("--tiny", action="store_true", help="CPU smoke run: tiny model, tiny data")
    ap.add_argument("--seed", type=int, default=1, help="training data seed")
    ap.add_argument("--eval-seed", type=int, default=2)
    ap.add_argument("--eval-problems", type=int, default=512)
    ap.add_argument("--eval-batch", type=int, default=256)
    ap.add_argument("--preview-problems", type=int, default=96)
    ap.add_argument("--preview-windows", default="64,256")
    ap.add_argument("--preview-max-tokens", type=int, default=1024)
    ap.add_argument("--batch-tokens", type=int, default=65536)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup-steps", type=int, default=150)
    ap.add_argument("--schedule", choices=["wsd", "cosine"], default="wsd",
                    help="wsd: constant after warm-up, linear decay over the last --decay-fraction")
    ap.add_argument("--decay-fraction", type=float, default=0.2)
    ap.add_argument("--curriculum", choices=["gated", "off"], default="gated",
                    help="gated: stages from one chain of 4-8 links up to the full task, each "
                         "widened only when its lookup accuracy passes --gate-threshold; off: the full task")
    ap.add_argument("--gate-threshold", type=float, default=0.9,
                    help="a stage ends when its held-out val_lookup_acc reaches this on --gate-checks checks in a row")
    ap.add_argument("--gate-checks", type=int, default=2)
    ap.add_argument("--gate-every", type=int, default=20, help="steps between two gate checks")
    ap.add_argument("--min-stage-steps", type=int, default=40, help="steps a stage trains at least")
    ap.add_argument("--full-range-at", type=float, default=0.6,
                    help="clock fallback: from this fraction of --train-seconds on, the full task "
                         "(the evaluation's range) whatever the gates say")
    ap.add_argument("--recall-fraction", type=float, default=0.15,
                    help="share of rows that are the recall drill (a fact list, then every fact again; "
                         "loss on the looked-up names only); taken from the problems' 80%%")
    ap.add_argument("--copy-fraction", type=float, default=0.05,
                    help="share of rows that are the copy drill (a list of names, then the list again "
                         "from a named point on: forms the induction head the lookup uses); taken from "
                         "the problems' share; stage 0 adds half of English's 20%%")
    ap.add_argument("--eval-texts", type=int, default=24,
                    help="eval_outputs.jsonl keeps the text of this many wrong answers (the file stays small)")
    ap.add_argument("--workers", type=int, default=0, help="data workers (0: cores - 2)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model")
    ap.add_argument("--init-from", default="",
                    help="continue from an exported hf/ directory (its weights, shape and tokenizer; a new "
                         "optimizer and schedule): a second device call after a first that ran out of time; "
                         "use with --curriculum off")
    ap.add_argument("--init-weights", default="",
                    help="start from an exported hf/ directory's weights and shape but with this version's "
                         "own tokenizer (built as without it): embedding rows of tokens both vocabularies "
                         "hold are copied by token string, a new token's row is the mean of the rows of "
                         "the old tokenizer's pieces of its text (transplant_embeddings); use with "
                         "--curriculum off to carry an earlier run's lookup circuit to a changed task")
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--hidden", type=int, default=384)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--intermediate", type=int, default=1024)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--min-links", type=int, default=None, help="task: shortest main chain")
    ap.add_argument("--max-links", type=int, default=None, help="task: longest main chain")
    ap.add_argument("--max-chains", type=int, default=None, help="task: chains per prompt")
    return ap.parse_args()


def main():
    a = parse_args()
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    chain_cfg = data.ChainConfig()
    if a.tiny:
        chain_cfg = data.ChainConfig(min_links=4, max_links=12, min_chains=2, max_chains=3)
        a.layers, a.hidden, a.heads, a.intermediate = 2, 64, 2, 128
        a.batch_tokens, a.warmup_steps = 4096, 5
        a.gate_every, a.min_stage_steps = min(a.gate_every, 10), min(a.min_stage_steps, 10)
        a.eval_problems, a.eval_batch = min(a.eval_problems, 8), 4
        a.preview_problems, a.preview_windows, a.preview_max_tokens = 4, "32", 64
    chain_cfg = data.ChainConfig(a.min_links or chain_cfg.min_links, a.max_links or chain_cfg.max_links,
                                 chain_cfg.min_chains, a.max_chains or chain_cfg.max_chains)
    os.makedirs(a.out, exist_ok=True)
    hf_dir = os.path.join(a.out, "hf")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 2)
    workers = a.workers or max(1, min(14, cores - 2))
    log("start", device=dev, torch=torch.__version__, python=platform.python_version(),
        gpu=torch.cuda.get_device_name(0) if dev.type == "cuda" else "none", workers=workers)
    torch.manual_seed(a.seed)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True

    # Tokenizer (with --init-from: the exported model's own).
    paragraphs = data.load_english(a.english)
    if a.init_from and a.init_weights:
        raise SystemExit("train.py: give --init-from or --init-weights, not both")
    if a.init_from:
        from tokenizers import Tokenizer
        tokenizer = Tokenizer.from_file(os.path.join(a.init_from, "tokenizer.json"))
    else:
        tokenizer = ltok.build(paragraphs if not a.tiny else paragraphs[:400], vocab_size=a.vocab,
                               num_problems=3000 if not a.tiny else 300)
    tok_check = ltok.check(tokenizer)
    log("tokenizer", **tok_check)
    tok_json = tokenizer.to_str()
    im_end, eot = tokenizer.token_to_id(data.IM_END), tokenizer.token_to_id(data.EOT)
    name_ids = torch.zeros(tokenizer.get_vocab_size(), dtype=torch.bool)  # " name"
    name_ids[name_token_ids(tokenizer)] = True
    number_ids = torch.zeros(tokenizer.get_vocab_size(), dtype=torch.bool)  # "4", " 47"
    number_ids[number_token_ids(tokenizer)] = True
    lookup_ids = (name_ids, number_ids)  # a looked-up fact: is_fact

    # Model (with --init-from / --init-weights: the exported model's shape and weights).
    if a.init_from:
        model = lm.load_exported(a.init_from, dev).train()
    elif a.init_weights:
        model, moved = transplant_embeddings(a.init_weights, tokenizer, dev)
        model.train()
        log("transplant", source=a.init_weights, **moved)
    else:
        model = lm.LilChainLM(lm.Config(vocab_size=tokenizer.get_vocab_size(), hidden_size=a.hidden,
                                        num_layers=a.layers, num_heads=a.heads, num_kv_heads=a.heads,
                                        intermediate_size=a.intermediate)).to(dev)
    cfg = model.cfg
    a.layers, a.hidden, a.heads, a.intermediate = cfg.num_layers, cfg.hidden_size, cfg.num_heads, cfg.intermediate_size
    params = lm.num_params(model)
    log("model", params=params, bf16_mib=round(params * 2 / 2**20, 1), init_from=a.init_from or a.init_weights or "random")
    if a.compile:  # the training forward only; decoding later uses the plain module
        model.hidden = torch.compile(model.hidden, dynamic=True)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.95), eps=1e-8, fused=dev.type == "cuda")

    # Data.
    if not 0.0 <= a.recall_fraction <= 0.8:
        raise SystemExit(f"train.py: --recall-fraction {a.recall_fraction} must be in [0, 0.8]")
    if not 0.0 <= a.copy_fraction <= 0.8 - a.recall_fraction:
        raise SystemExit(f"train.py: --copy-fraction {a.copy_fraction} must be in [0, 0.8 - --recall-fraction]")
    mix = {"problem": 0.8 - a.recall_fraction - a.copy_fraction, "recall": a.recall_fraction,
           "copy": a.copy_fraction, "english_chat": 0.1}
    max_len = 2 * chain_cfg.max_links * 6 + 800  # longer than any problem
    stages = data.curriculum_stages(chain_cfg) if a.curriculum == "gated" else [chain_cfg]
    stage = multiprocessing.Value("i", 0)  # the workers read it (shared memory)
    stream = RowStream(tok_json, paragraphs, chain_cfg, a.batch_tokens, max_len, a.seed, mix,
                       pool=768 if not a.tiny else 32, stages=stages, stage=stage)
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=workers,
                                         pin_memory=dev.type == "cuda", prefetch_factor=2,
                                         persistent_workers=True)
    val_mix = {"problem": 1.0, "english_chat": 0.0}
    val_stream = RowStream(tok_json, paragraphs, chain_cfg, min(a.batch_tokens, 32768), max_len,
                           a.eval_seed + 100, val_mix, pool=64 if not a.tiny else 8)
    val_batch = next(iter(val_stream))
    # One held-out batch per stage for its gate (other seeds than training and evaluation).
    stage_val = [next(iter(RowStream(tok_json, paragraphs, c, min(a.batch_tokens, 16384), max_len,
                                     a.eval_seed + 200 + i, val_mix, pool=96 if not a.tiny else 32)))
                 for i, c in enumerate(stages[:-1])] + [val_batch]
    # Workers are forked next: a child must not use the tokenizers thread pool the parent
    # has started (it deadlocks), so they encode on one thread each.
    os.environ["TOKENIZERS_PARALLELISM"] = "false"

    # Train.
    history, step, tokens_seen = [], 0, 0
    last_log, last_export = time.time(), False
    transitions, streak, stage_start, stage_acc = [], 0, 0, float("nan")
    it = iter(loader)
    t_start = time.time()

    def advance(to, reason):
        nonlocal streak, stage_start
        transitions.append({"stage": to, "step": step, "seconds": round(time.time() - t_start, 1),
                            "reason": reason, "from_stage_lookup_acc": round(stage_acc, 4),
                            "task": stages[to].as_dict()})
        log("curriculum stage", **{k: v for k, v in transitions[-1].items() if k != "task"},
            **stages[to].as_dict())
        stage.value, streak, stage_start = to, 0, step

    log("curriculum stage", stage=0, of=len(stages), **stages[0].as_dict())
    model.train()
    while True:
        elapsed = time.time() - t_start
        if elapsed >= a.train_seconds:
            break
        last = len(stages) - 1
        if stage.value < last and elapsed >= a.full_range_at * a.train_seconds:
            advance(last, "clock")  # the rest of the budget trains on the evaluation's range
        elif stage.value < last and step > 0 and step % a.gate_every == 0:
            model.eval()
            _, stage_acc = teacher_forced_accuracy(model, stage_val[stage.value], dev, lookup_ids)
            model.train()
            streak = streak + 1 if stage_acc >= a.gate_threshold else 0
            if streak >= a.gate_checks and step - stage_start >= a.min_stage_steps:
                advance(stage.value + 1, "gate")
        progress = elapsed / a.train_seconds
        lr = a.lr * min(1.0, (step + 1) / a.warmup_steps) * lr_factor(a.schedule, progress, a.decay_fraction)
        for g in opt.param_groups:
            g["lr"] = lr
        ids, labels = next(it)
        ids, labels = ids.to(dev, non_blocking=True), labels.to(dev, non_blocking=True)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            loss = model.loss(ids, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        tokens_seen += ids.numel()
        if time.time() - last_log > (10 if not a.tiny else 2) or step == 1:
            model.eval()
            acc, lookup_acc = teacher_forced_accuracy(model, val_batch, dev, lookup_ids)
            model.train()
            rec = {"step": step, "seconds": round(time.time() - t_start, 1), "loss": round(loss.item(), 4),
                   "grad_norm": round(float(gnorm), 3), "lr": round(lr, 6), "tokens": tokens_seen,
                   "tokens_per_s": round(tokens_seen / (time.time() - t_start)),
                   "val_answer_token_acc": round(acc, 5), "val_lookup_acc": round(lookup_acc, 5),
                   "stage": stage.value, "stage_lookup_acc": round(stage_acc, 4),
                   "max_links_now": stream._task().max_links,
                   "batch_rows": ids.shape[0],
                   "batch_width": ids.shape[1]}
            history.append(rec)
            log("train", **rec)
            last_log = time.time()
        if not last_export and progress > 0.5:  # a usable model even if a later step fails
            lm.export_hf(model, tokenizer, hf_dir, data.CHAT_TEMPLATE, [im_end, eot], eot)
            last_export = True
    train_seconds = time.time() - t_start
    if a.compile:
        del model.hidden  # back to the class's method
    model.eval()
    final_acc, final_lookup = teacher_forced_accuracy(model, val_batch, dev, lookup_ids)
    lm.export_hf(model, tokenizer, hf_dir, data.CHAT_TEMPLATE, [im_end, eot], eot)
    log("exported", dir=hf_dir, steps=step, tokens=tokens_seen, val_answer_token_acc=round(final_acc, 5),
        val_lookup_acc=round(final_lookup, 5))
    del loader, it
    metrics = {
        "model": {"architecture": "LlamaForCausalLM", "params": params, "layers": cfg.num_layers,
                  "hidden": cfg.hidden_size, "heads": cfg.num_heads, "head_dim": cfg.head_dim,
                  "intermediate": cfg.intermediate_size, "vocab": cfg.vocab_size,
                  "weights_bytes": os.path.getsize(os.path.join(hf_dir, "model.safetensors"))},
        "tokenizer": tok_check, "task": chain_cfg.as_dict(), "mix": mix,
        "train": {"seconds": round(train_seconds, 1), "steps": step, "tokens": tokens_seen,
                  "batch_tokens": a.batch_tokens, "lr": a.lr, "schedule": a.schedule, "init_from": a.init_from or None,
                  "init_weights": a.init_weights or None,
                  "decay_fraction": a.decay_fraction, "warmup_steps": a.warmup_steps,
                  "curriculum": ({"kind": "gated", "stages": [c.as_dict() for c in stages],
                                  "gate_threshold": a.gate_threshold, "gate_checks": a.gate_checks,
                                  "gate_every": a.gate_every, "full_range_at": a.full_range_at,
                                  "transitions": transitions}
                                 if len(stages) > 1 else None), "seed": a.seed,
                  "device": torch.cuda.get_device_name(0) if dev.type == "cuda" else "cpu",
                  "val_answer_token_acc": final_acc, "val_lookup_acc": final_lookup, "history": history},
    }
    write_json(os.path.join(a.out, "metrics.json"), metrics)

    # Held-out problems: the set `lilctl eval` uses (same generator, same seed).
    problems = data.problem_set(a.eval_seed, a.eval_problems, chain_cfg)
    with open(os.path.join(a.out, "eval_problems.jsonl"), "w") as f:
        for i, p in enumerate(problems):
            f.write(json.dumps(data.eval_record(i, p, a.eval_seed)) + "\n")
    longest = max(len(tokenizer.encode(p["cot"]).ids) for p in problems) + 64
    t = time.time()

    def partial(recs):
        metrics["eval_full_attention_partial"] = {
            "problems": len(recs), "accuracy": sum(r["correct"] for r in recs) / len(recs)}
        write_json(os.path.join(a.out, "metrics.json"), metrics)

    records = hf_eval(hf_dir, problems, dev, a.eval_batch, longest, partial)
    acc = sum(r["correct"] for r in records) / len(records)
    metrics["eval_full_attention"] = {
        "problems": len(records), "seed": a.eval_seed, "decoder": "transformers generate, greedy",
        "accuracy": acc, "exact_cot_rate": sum(r["exact_cot"] for r in records) / len(records),
        "mean_tokens": statistics.mean(r["tokens"] for r in records),
        "hit_max_tokens": sum(r["hit_max"] for r in records), "max_new_tokens": longest,
        "seconds": round(time.time() - t, 1),
        "accuracy_by_links": accuracy_by_links(problems, records)}
    log("full attention accuracy", accuracy=round(acc, 4), problems=len(records))
    with open(os.path.join(a.out, "eval_outputs.jsonl"), "w") as f:
        wrong = 0
        for r in records:  # the text only of the first --eval-texts wrong answers, cut to 3,000 chars
            text = r.pop("text")
            if not r["correct"] and wrong < a.eval_texts:
                r["text"] = text[:3000]
                wrong += 1
            f.write(json.dumps(r) + "\n")
    write_json(os.path.join(a.out, "metrics.json"), metrics)

    # Sink + window preview (our decoder; token-level windows, lilserve's are page-level).
    preview = problems[:a.preview_problems]
    windows = [int(w) for w in a.preview_windows.split(",") if w]
    metrics["sparse_preview"] = sparse_preview(
        model.to(dev), tokenizer, preview, dev, windows, 16 if not a.tiny else 4,
        a.preview_max_tokens, T0 + a.deadline_seconds, 96 if not a.tiny else 4)
    write_json(os.path.join(a.out, "metrics.json"), metrics)
    write_card(os.path.join(hf_dir, "MODEL_CARD.md"), metrics)
    log("done", total_seconds=round(time.time() - T0, 1))


def lr_factor(schedule, progress, decay_fraction):
    """Multiplier of the peak learning rate at `progress` (0..1) of the wall-clock budget.
    wsd: constant, then a linear decay to 5% over the last `decay_fraction` (the lookups form
    at full learning rate; run 1's cosine had halved it before they did); cosine: to 5%."""
    if schedule == "cosine":
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress))
    decay_start = 1.0 - decay_fraction
    if progress <= decay_start:
        return 1.0
    return 1.0 - 0.95 * min(1.0, (progress - decay_start) / max(decay_fraction, 1e-9))


def accuracy_by_links(problems, records):
    buckets = {}
    for p, r in zip(problems, records):
        lo = (p["links"] - 1) // 48 * 48 + 1
        key = f"{lo}-{lo + 47}"
        n, c = buckets.get(key, (0, 0))
        buckets[key] = (n + 1, c + r["correct"])
    return {k: {"problems": n, "accuracy": c / n} for k, (n, c) in sorted(buckets.items(),
                                                                         key=lambda kv: int(kv[0].split("-")[0]))}


def write_json(path, obj):
    with open(path + ".tmp", "w") as f:
        json.dump(obj, f, indent=1)
    os.replace(path + ".tmp", path)


def write_card(path, m):
    t, e, mo = m["train"], m.get("eval_full_attention", {}), m["model"]
    rows = "\n".join(f"| {r['attention']} | {r['accuracy']:.3f} | {r['mean_tokens']:.0f} | "
                     f"{r['hit_max_tokens_rate']:.2f} | {r['monitor_stop_rate']:.2f} | "
                     f"{r['monitor_enforce_accuracy']:.3f} | {r['monitor_enforce_mean_tokens']:.0f} |"
                     for r in m.get("sparse_preview", []))
    schedule = ("cosine over the wall-clock budget" if t.get("schedule") == "cosine" else
                f"constant, linear decay over the last {t.get('decay_fraction', 0.2):.0%} of the budget")
    cur = t.get("curriculum")
    curriculum = ""
    if cur:
        moves = "; ".join(f"stage {x['stage']} ({x['task']['min_links']}-{x['task']['max_links']} links, "
                          f"{x['task']['min_chains']}-{x['task']['max_chains']} chains) at {x['seconds']:.0f} s "
                          f"by {x['reason']}" for x in cur["transitions"]) or "none"
        first = cur["stages"][0]
        curriculum = (f"a gated curriculum (from one chain of {first['min_links']}-{first['max_links']} links, "
                      f"wider when the stage's lookup accuracy reached {cur['gate_threshold']}, the full task "
                      f"from {cur['full_range_at']:.0%} of the budget at the latest; moves: {moves}), ")
    by_links = ", ".join(f"{k}: {v['accuracy']:.3f} (n={v['problems']})"
                         for k, v in e.get("accuracy_by_links", {}).items())
    start = "from scratch"
    if t.get("init_weights"):
        start = (f"from the layers of an earlier LilChain export (`--init-weights {t['init_weights']}`: its "
                 f"embedding rows moved to this version's tokenizer by token string, new tokens from the mean "
                 f"of their old pieces; that export's own training is in its card and docs/LIL.md)")
    elif t.get("init_from"):
        start = f"further from an earlier export (`--init-from {t['init_from']}`, same tokenizer)"
    with open(path, "w") as f:
        f.write(f"""# LilChain

A {mo['params'] / 1e6:.1f}M-parameter Llama-architecture model (weights {mo['weights_bytes'] / 2**20:.1f} MiB,
bf16) trained {start} by `models/lilchain/train_on_gpu.sh` in the lilserve repository, to
show the "Less is Less" effect of sparse attention on long chains of thought and what
lilserve's information monitor saves. Not a general-purpose model.

## Task

"Follow the links": the prompt lists 1.5-2x L lines ` from to` (two names; the main chain of
L links from the start, plus 1-4 distractor chains; every chain ends in ` name NN`, a
two-digit number) in random order; the answer walks the chain one line per link, each line
copied from the prompt line whose first name is the current one, then `Answer: NN`. L is uniform in
[{m['task']['min_links']}, {m['task']['max_links']}]. Every step looks a fact up anywhere in the
prompt, hundreds of tokens back. Generator: `models/lilchain/lilchain_data.py` (the
held-out set is seed {e.get('seed', '?')}; training uses seed {t['seed']} in worker streams).
Chat template: `<|im_start|>role\\ncontent<|im_end|>\\n`, end of answer `<|im_end|>`.

## Data and training

{m['mix']['problem']:.0%} problems, {m['mix'].get('recall', 0):.0%} recall drill (a fact list, then every fact again),
{m['mix'].get('copy', 0):.0%} copy drill (a name list, then the list again from a random name on),
10% English continuation chats, 10% raw English (King James Bible and the
Brown corpus, `prepare_english.py`). Own byte-level BPE tokenizer (HF tokenizers, Qwen2
pre-tokenizer regex but digits in groups of up to two with one optional space), vocabulary
{mo['vocab']}; all {m['tokenizer']['names']} node names ({m['tokenizer']['names_not_single_token']} are not) and
all chain numbers are single tokens. {mo['layers']} layers, hidden
{mo['hidden']}, {mo['heads']} heads of {mo['head_dim']}, MLP {mo['intermediate']}, tied embeddings, RoPE theta
10000. AdamW (lr {t['lr']}, {schedule}), {curriculum}bf16 autocast, batches of
~{t['batch_tokens']} tokens, one document per row. Trained {t['seconds']:.0f} s on {t['device']}:
{t['steps']} steps, {t['tokens'] / 1e6:.0f} M tokens (padding included).

## Evaluation (full attention, transformers greedy decoding)

{e.get('problems', '?')} held-out problems: exact-answer accuracy **{e.get('accuracy', float('nan')):.3f}**,
whole chain of thought exact {e.get('exact_cot_rate', float('nan')):.3f}, mean {e.get('mean_tokens', float('nan')):.0f}
generated tokens. By chain length: {by_links}.

## Sink + window preview (own decoder, token-level windows, sink 16; lilserve's runs are in docs/LIL.md)

| attention | accuracy | mean tokens | hit max tokens | monitor would stop | enforce accuracy | enforce mean tokens |
|---|---|---|---|---|---|---|
{rows}
""")


if __name__ == "__main__":
    main()

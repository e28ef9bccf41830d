#!/usr/bin/env python3
# File: bench/quest_recall.py
# Quest page selection quality on a real model's activations, with the per-page key metadata
# (elementwise min / max of a page's keys, per KV head) kept in bf16 versus e4m3 rounded outward
# (min down, max up; kernels/quest_fp8.h). The metric is attention-mass recall: the share of the
# dense softmax probability of a query head (over keys 0..t) that lands on the pages Quest keeps,
# averaged over query heads, layers and decode positions. Oracle (top pages by true attention
# mass) and sink+window (first 4 pages plus the newest ones) give the reference points.
#
# One causal forward per context window stands in for decoding: the query at position t sees
# exactly keys 0..t. q and k are captured after RoPE by wrapping apply_rotary_pos_emb; keys are
# rounded to bf16 (the KV cache's type) for both the metadata and the dense reference.
# Selection follows kernels/cpu/quest.cc: 16-token pages in logical order, the newest page (the
# one holding t) always kept, the best (budget/16 - 1) others by the bound
# sum_g sum_j max(q_gj * lo_j, q_gj * hi_j), ties to the lower page.
#
# Positions measured: every --stride-th (8) of the window's upper half. About 2-3 min on 2 cores.
#
#   .venv/bin/python bench/quest_recall.py [--budgets 128,256,512] [--windows 4] [--text-rev 051655d]
import argparse
import contextlib
import io
import os
import subprocess
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGE = 16

# ---- OCP e4m3 (ported from kernels/quest_fp8.h), vectorized over float32 arrays ----
MAX_CODE = 0x7E  # 448


def e4m3_to_float(b):
    b = b.astype(np.uint32)
    e, m = (b >> 3) & 15, b & 7
    normal = (((e.astype(np.int64) - 7 + 127) << 23) | (m << 20)).astype(np.uint32).view(np.float32)
    mag = np.where(e == 0, m.astype(np.float32) / np.float32(512), normal)  # subnormals: m * 2^-9
    return np.where(b & 0x80, -mag, mag).astype(np.float32)


def e4m3_floor_mag(a):
    """Largest code with magnitude <= a (a >= 0); 448 and beyond saturate."""
    a = a.astype(np.float32)
    u = a.view(np.uint32)
    e = ((u >> 23) & 255).astype(np.int64) - 127 + 7
    normal = (np.clip(e, 0, 15) << 3) | ((u >> 20) & 7)
    sub = np.floor(np.minimum(a, np.float32(1 / 64)) * np.float32(512)).astype(np.int64)
    code = np.where(a < np.float32(1 / 64), sub, normal)
    return np.where(a < np.float32(448), code, MAX_CODE).astype(np.uint8)


def e4m3_ceil_mag(a):
    c = e4m3_floor_mag(a)
    bump = (c < MAX_CODE) & (e4m3_to_float(c) < a)
    return (c + bump).astype(np.uint8)


def e4m3_round_down(x):
    x = np.asarray(x, np.float32)
    a = np.abs(x)
    return np.where(x < 0, 0x80 | e4m3_ceil_mag(a), e4m3_floor_mag(a)).astype(np.uint8)


def e4m3_round_up(x):
    x = np.asarray(x, np.float32)
    a = np.abs(x)
    m = e4m3_floor_mag(a)
    neg = np.where(m == 0, 0, 0x80 | m)  # -0 is stored as +0
    return np.where(x < 0, neg, e4m3_ceil_mag(a)).astype(np.uint8)


def check_e4m3_port():
    """down <= x <= up, both finite codes, equal if x is representable, else adjacent values."""
    rng = np.random.default_rng(0)
    values = np.sort(np.unique(e4m3_to_float(np.array([c for c in range(256) if c & 0x7F != 0x7F], np.uint8))))
    assert len(values) == 253 and values[0] == -448 and values[-1] == 448  # +-0 collapse to one
    x = np.concatenate([rng.normal(0, s, 200) for s in (0.005, 0.1, 1, 10, 100)] + [values, [0.0, -0.0]])
    x = x.astype(np.float32)
    x = x[np.abs(x) <= 448]
    lo, hi = e4m3_to_float(e4m3_round_down(x)), e4m3_to_float(e4m3_round_up(x))
    assert np.all(lo <= x) and np.all(x <= hi), "outward rounding violated"
    assert np.all(np.isin(lo, values)) and np.all(np.isin(hi, values)), "not representable"
    ilo, ihi = np.searchsorted(values, lo), np.searchsorted(values, hi)
    exact = np.isin(x, values)
    assert np.all(ilo[exact] == ihi[exact]) and np.all(ihi[~exact] == ilo[~exact] + 1), "not adjacent"
    assert e4m3_round_up(np.float32(-1e-4)) == 0 and e4m3_round_down(np.float32(1000)) == MAX_CODE
    return len(x)


def bf16(t):
    return t.to(torch.bfloat16).to(torch.float32)


def e4m3_bounds(lo, hi):
    lo8 = e4m3_to_float(e4m3_round_down(lo.numpy()))
    hi8 = e4m3_to_float(e4m3_round_up(hi.numpy()))
    return torch.from_numpy(lo8), torch.from_numpy(hi8)


# ---- selection ----
def ranked_pages(score, newest):
    """Page indices by descending score, ties to the lower page; the newest and later pages last."""
    npages = score.shape[-1]
    later = torch.arange(npages)[None, None, :] >= newest[None, :, None]
    return torch.sort(score.masked_fill(later, float("-inf")), dim=-1, descending=True, stable=True).indices


def keep_mask(order, keep, newest):
    sel = torch.zeros(order.shape, dtype=torch.bool)
    sel.scatter_(-1, order[..., : keep - 1], True)
    sel[:, torch.arange(len(newest)), newest] = True
    return sel


def layer_rows(q, k, pos, budgets, scale):
    """q [Hq, T, d] float, k [Hkv, T, d] bf16-exact. Per budget, per-row (KV head x position) numbers."""
    hq, T, d = q.shape
    hkv, npages, group = k.shape[0], T // PAGE, hq // k.shape[0]
    qs = q[:, pos]                                                         # [Hq, P, d]
    kq = k.repeat_interleave(group, 0)                                     # [Hq, T, d]
    logits = torch.einsum("hpd,htd->hpt", qs, kq) * scale
    logits.masked_fill_(torch.arange(T)[None, None, :] > pos[None, :, None], float("-inf"))
    mass = torch.softmax(logits, -1).view(hq, len(pos), npages, PAGE).sum(-1)  # [Hq, P, pages]
    mass_g = mass.view(hkv, group, len(pos), npages)

    pages = k.view(hkv, npages, PAGE, d)
    lo, hi = pages.amin(2), pages.amax(2)                                  # [Hkv, pages, d]
    lo8, hi8 = e4m3_bounds(lo, hi)
    qg = qs.view(hkv, group, len(pos), d)
    qpos, qneg = qg.clamp(min=0).sum(1), qg.clamp(max=0).sum(1)           # folded over the group
    newest = pos // PAGE
    order = {
        "bf16": ranked_pages(qpos @ hi.transpose(1, 2) + qneg @ lo.transpose(1, 2), newest),
        "e4m3": ranked_pages(qpos @ hi8.transpose(1, 2) + qneg @ lo8.transpose(1, 2), newest),
        "oracle": ranked_pages(mass_g.sum(1), newest),
    }
    out = {}
    for b in budgets:
        keep = b // PAGE
        valid = newest + 1 > keep                                         # else everything is kept
        sel = {name: keep_mask(o, keep, newest) for name, o in order.items()}
        idx = torch.arange(npages)[None, :]
        sink = (idx < 4) | ((idx <= newest[:, None]) & (idx > newest[:, None] - (keep - 4)))
        sel["sink"] = sink.unsqueeze(0).expand(hkv, -1, -1)
        rec = {name: (mass_g * s.unsqueeze(1)).sum(-1).mean(1)[:, valid] for name, s in sel.items()}
        rec["agree"] = (((sel["bf16"] & sel["e4m3"]).sum(-1) - 1).float() / (keep - 1))[:, valid]
        out[b] = rec
    return out


def load_windows(tok, windows, ctx, rev):
    """The text: docs/*.md and README.md as of git revision `rev` (fixed, so a rerun reads the same
    tokens while the docs keep changing), then ../shared/DESIGN.md when present."""
    def git(*a):
        return subprocess.run(["git", "-C", ROOT, *a], capture_output=True, text=True, check=True).stdout
    paths = [p for p in git("ls-tree", "--name-only", rev, "docs/").split() if p.endswith(".md")]
    texts = [git("show", f"{rev}:{p}") for p in sorted(paths) + ["README.md"]]
    design = os.path.join(os.path.dirname(ROOT), "shared", "DESIGN.md")
    if os.path.exists(design):
        texts.append(open(design, encoding="utf-8").read())
    text = "\n\n".join(texts)
    ids = tok(text, add_special_tokens=False)["input_ids"]
    if len(ids) < ctx:
        raise SystemExit(f"only {len(ids)} tokens of text, need {ctx}")
    starts = np.linspace(0, len(ids) - ctx, windows).astype(int) if windows > 1 else [0]
    return [torch.tensor(ids[s:s + ctx])[None] for s in starts], len(ids), [int(s) for s in starts]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--budgets", default="128,256,512")
    ap.add_argument("--windows", type=int, default=4)
    ap.add_argument("--ctx", type=int, default=2048, help="tokens per window (capped by the model)")
    ap.add_argument("--stride", type=int, default=8, help="decode positions: every Nth in the upper half")
    ap.add_argument("--text-rev", default="051655d", help="git revision whose docs are the text")
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    args = ap.parse_args()
    budgets = [int(b) for b in args.budgets.split(",")]
    t0 = time.time()
    nchecked = check_e4m3_port()

    import transformers.models.llama.modeling_llama as llama
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    mdir, mfile = os.path.split(args.model)
    tok = AutoTokenizer.from_pretrained(mdir, gguf_file=mfile)
    with contextlib.redirect_stderr(io.StringIO()):  # the GGUF dequantization progress bar
        model = AutoModelForCausalLM.from_pretrained(mdir, gguf_file=mfile, dtype=torch.float32,
                                                     attn_implementation="eager").eval()
    cfg = model.config
    ctx = min(args.ctx, cfg.max_position_embeddings // PAGE * PAGE)
    scale = cfg.head_dim ** -0.5

    captured, original = [], llama.apply_rotary_pos_emb

    def recording_rope(*a, **kw):  # one call per layer per forward, in layer order
        q, k = original(*a, **kw)
        captured.append((q[0].detach().clone(), k[0].detach().clone()))
        return q, k
    llama.apply_rotary_pos_emb = recording_rope

    windows, ntok, starts = load_windows(tok, args.windows, ctx, args.text_rev)
    pos = torch.arange(ctx // 2, ctx, args.stride)
    rows = {b: {} for b in budgets}          # budget -> metric -> list over (window, layer)
    sat = total = 0
    for ids in windows:
        captured.clear()
        with torch.no_grad():
            model(input_ids=ids, use_cache=False)
        assert len(captured) == cfg.num_hidden_layers
        for layer, (q, k) in enumerate(captured):
            kb = bf16(k)
            sat += int((kb.abs() > 448).sum())
            total += kb.numel()
            for b, rec in layer_rows(q, kb, pos, budgets, scale).items():
                for name, v in rec.items():
                    rows[b].setdefault(name, []).append((layer, v.flatten()))

    print(f"Model {os.path.basename(args.model)} ({cfg.num_hidden_layers} layers, {cfg.num_attention_heads} q / "
          f"{cfg.num_key_value_heads} KV heads, head_dim {cfg.head_dim}); {len(windows)} windows x {ctx} tokens "
          f"of repo docs at {args.text_rev} ({ntok} tokens, starts {starts}); decode positions {ctx // 2}..{ctx - 1} step "
          f"{args.stride} ({len(pos)} each), all layers and heads; keys > 448 in magnitude: {sat}/{total}; "
          f"e4m3 port checked on {nchecked} values; {time.time() - t0:.0f} s.\n")

    def summary(b, layers):
        r = {n: torch.cat([v for l, v in lst if l in layers]) for n, lst in rows[b].items()}
        diff = r["e4m3"] - r["bf16"]
        return r, diff

    all_layers = set(range(cfg.num_hidden_layers))
    print("| budget (tokens) | Quest bf16 recall | Quest e4m3 recall | e4m3 - bf16 (pp) | oracle | sink+window "
          "| page agreement | mean abs row diff (pp) | p5 row diff (pp) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for b in budgets:
        r, diff = summary(b, all_layers)
        if len(diff) == 0:
            print(f"| {b} | (all pages fit the budget) |||||||")
            continue
        print(f"| {b} | {r['bf16'].mean():.4f} | {r['e4m3'].mean():.4f} | {100 * diff.mean():+.3f} | "
              f"{r['oracle'].mean():.4f} | {r['sink'].mean():.4f} | {r['agree'].mean():.4f} | "
              f"{100 * diff.abs().mean():.3f} | {100 * torch.quantile(diff.double(), 0.05):+.3f} |")
    print("\nBy layer group (recall bf16 / e4m3 / oracle / sink+window):")
    for b in budgets:
        parts = []
        for name, layers in (("layers 0-1", {0, 1}), ("layers 2+", all_layers - {0, 1})):
            r, _ = summary(b, layers)
            if len(r["bf16"]):
                parts.append(f"{name}: {r['bf16'].mean():.4f} / {r['e4m3'].mean():.4f} / "
                             f"{r['oracle'].mean():.4f} / {r['sink'].mean():.4f}")
        print(f"- budget {b}: " + "; ".join(parts))
    group = cfg.num_attention_heads // cfg.num_key_value_heads
    print(f"\nRows = (window, layer, KV head, position); a row's recall averages its {group} query heads. Page agreement "
          "counts the scored pages only (the always-kept newest page excluded).")


if __name__ == "__main__":
    main()

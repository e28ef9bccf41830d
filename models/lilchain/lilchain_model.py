# File: models/lilchain/lilchain_model.py
# A Llama-architecture decoder in plain PyTorch whose parameter names and math equal
# transformers' LlamaForCausalLM (RMSNorm in fp32, rotate-half RoPE, SwiGLU, tied
# embeddings), so the export is a HuggingFace directory that transformers and lilserve load
# as is. Also a batched greedy decoder with a KV cache that can mask attention like
# StreamingLLM (sink + recent window), used to preview the sparse-attention effect on the
# GPU before lilserve runs the real grid.
import json
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F


class Config:
    def __init__(self, vocab_size=4096, hidden_size=384, num_layers=6, num_heads=6,
                 num_kv_heads=6, intermediate_size=1024, rope_theta=10000.0,
                 max_position_embeddings=4096, rms_norm_eps=1e-5):
        self.vocab_size, self.hidden_size, self.num_layers = vocab_size, hidden_size, num_layers
        self.num_heads, self.num_kv_heads = num_heads, num_kv_heads
        self.head_dim = hidden_size // num_heads
        self.intermediate_size, self.rope_theta = intermediate_size, rope_theta
        self.max_position_embeddings, self.rms_norm_eps = max_position_embeddings, rms_norm_eps

    def hf_config(self, eos_ids, pad_id):
        return {
            "architectures": ["LlamaForCausalLM"], "model_type": "llama",
            "vocab_size": self.vocab_size, "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size, "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads, "num_key_value_heads": self.num_kv_heads,
            "head_dim": self.head_dim, "hidden_act": "silu",
            "max_position_embeddings": self.max_position_embeddings,
            "rms_norm_eps": self.rms_norm_eps, "rope_theta": self.rope_theta,
            "attention_bias": False, "mlp_bias": False, "tie_word_embeddings": True,
            "bos_token_id": None, "eos_token_id": eos_ids[0], "pad_token_id": pad_id,
            "torch_dtype": "bfloat16", "initializer_range": 0.02, "use_cache": True,
        }


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


def rope_tables(cfg, positions, device):
    """cos, sin of shape [..., head_dim] for integer `positions` (any shape)."""
    inv = 1.0 / (cfg.rope_theta ** (torch.arange(0, cfg.head_dim, 2, device=device).float() / cfg.head_dim))
    freqs = positions.float()[..., None] * inv
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos(), emb.sin()


def apply_rope(x, cos, sin):
    # x [B, H, T, D]; cos/sin [B, T, D] -> broadcast over heads.
    cos, sin = cos[:, None].to(x.dtype), sin[:, None].to(x.dtype)
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat([-x2, x1], dim=-1) * sin


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        h, d = cfg.hidden_size, cfg.head_dim
        self.cfg = cfg
        self.q_proj = nn.Linear(h, cfg.num_heads * d, bias=False)
        self.k_proj = nn.Linear(h, cfg.num_kv_heads * d, bias=False)
        self.v_proj = nn.Linear(h, cfg.num_kv_heads * d, bias=False)
        self.o_proj = nn.Linear(cfg.num_heads * d, h, bias=False)

    def forward(self, x, cos, sin, cache=None, mask=None):
        """cache: (k_buf, v_buf, start) writes this step's keys at [start, start+T) and attends
        to [0, start+T) under `mask` (bool [B, 1, T, S], True = attend); no cache: causal."""
        B, T, _ = x.shape
        c = self.cfg
        q = self.q_proj(x).view(B, T, c.num_heads, c.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(B, T, c.num_kv_heads, c.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(B, T, c.num_kv_heads, c.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cache is not None:
            k_buf, v_buf, start = cache
            k_buf[:, :, start:start + T] = k
            v_buf[:, :, start:start + T] = v
            k, v = k_buf[:, :, :start + T], v_buf[:, :, :start + T]
        groups = c.num_heads // c.num_kv_heads
        if groups > 1:
            k, v = k.repeat_interleave(groups, 1), v.repeat_interleave(groups, 1)
        if mask is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, -1))


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.up_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.down_proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x, cos, sin, cache=None, mask=None):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, cache, mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class Backbone(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.num_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)


class LilChainLM(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.model = Backbone(cfg)
        self.apply(self._init)
        for name, p in self.named_parameters():  # GPT-2 style: residual writes scaled by depth
            if name.endswith("o_proj.weight") or name.endswith("down_proj.weight"):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * cfg.num_layers))

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)

    def hidden(self, ids, positions=None, caches=None, mask=None):
        if positions is None:
            positions = torch.arange(ids.shape[1], device=ids.device).expand(ids.shape[0], -1)
        cos, sin = rope_tables(self.cfg, positions, ids.device)
        x = self.model.embed_tokens(ids)
        for i, layer in enumerate(self.model.layers):
            x = layer(x, cos, sin, None if caches is None else caches[i], mask)
        return self.model.norm(x)

    def logits(self, h):
        return h @ self.model.embed_tokens.weight.t()  # tied lm_head

    def loss(self, ids, labels):
        """Mean cross entropy over positions whose label is not -100 (logits only there)."""
        h = self.hidden(ids)
        keep = labels != -100
        logits = self.logits(h[keep]).float()
        return F.cross_entropy(logits, labels[keep])


def num_params(model):
    return sum(p.numel() for p in model.parameters())


# ----------------------------------------------------------------------------------------
# Export / import as a HuggingFace directory
# ----------------------------------------------------------------------------------------

def export_hf(model, tokenizer, out_dir, chat_template, eos_ids, pad_id):
    """config.json, model.safetensors (bf16), tokenizer.json, tokenizer_config.json,
    generation_config.json (MODEL_CARD.md is written by the caller)."""
    from safetensors.torch import save_file
    os.makedirs(out_dir, exist_ok=True)
    tensors = {k: v.detach().to(torch.bfloat16).contiguous().cpu()
               for k, v in model.state_dict().items()}
    save_file(tensors, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(model.cfg.hf_config(eos_ids, pad_id), f, indent=2)
    tokenizer.save(os.path.join(out_dir, "tokenizer.json"))
    id_to = tokenizer.id_to_token
    added = {str(i): {"content": id_to(i), "lstrip": False, "rstrip": False, "normalized": False,
                      "single_word": False, "special": True} for i in range(3)}
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "added_tokens_decoder": added,
                   "bos_token": None, "eos_token": id_to(eos_ids[0]), "pad_token": id_to(pad_id),
                   "unk_token": None, "model_max_length": model.cfg.max_position_embeddings,
                   "model_input_names": ["input_ids", "attention_mask"],
                   "clean_up_tokenization_spaces": False, "chat_template": chat_template}, f, indent=2)
    with open(os.path.join(out_dir, "generation_config.json"), "w") as f:
        json.dump({"eos_token_id": eos_ids, "pad_token_id": pad_id, "do_sample": False}, f, indent=2)


def load_exported(out_dir, device="cpu"):
    """Our model from an exported directory (for the decoding previews and tests)."""
    from safetensors.torch import load_file
    with open(os.path.join(out_dir, "config.json")) as f:
        c = json.load(f)
    cfg = Config(c["vocab_size"], c["hidden_size"], c["num_hidden_layers"],
                 c["num_attention_heads"], c["num_key_value_heads"], c["intermediate_size"],
                 c["rope_theta"], c["max_position_embeddings"], c["rms_norm_eps"])
    model = LilChainLM(cfg)
    state = load_file(os.path.join(out_dir, "model.safetensors"))
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return model.to(device).eval()


# ----------------------------------------------------------------------------------------
# Batched greedy decoding with optional sink + window attention (a token-level StreamingLLM)
# ----------------------------------------------------------------------------------------

@torch.no_grad()
def greedy_decode(model, prompts, max_new_tokens, stop_ids, sink=None, window=None,
                  dtype=torch.bfloat16):
    """prompts: lists of token ids. Returns the generated ids per prompt (stop token
    excluded). With sink/window set, every decode step attends only to the first `sink`
    and the last `window` positions of its own sequence (prefill stays dense, as in
    lilserve)."""
    cfg, dev = model.cfg, next(model.parameters()).device
    if dev.type != "cuda":
        dtype = torch.float32  # no autocast on CPU: the cache holds what the layers produce
    B, P = len(prompts), max(len(p) for p in prompts)
    S = P + max_new_tokens
    pad = torch.tensor([P - len(p) for p in prompts], device=dev)
    ids = torch.zeros(B, P, dtype=torch.long, device=dev)
    for i, p in enumerate(prompts):
        ids[i, P - len(p):] = torch.tensor(p, device=dev)
    caches = [(torch.zeros(B, cfg.num_kv_heads, S, cfg.head_dim, device=dev, dtype=dtype),
               torch.zeros(B, cfg.num_kv_heads, S, cfg.head_dim, device=dev, dtype=dtype), 0)
              for _ in range(cfg.num_layers)]
    slot = torch.arange(S, device=dev)
    rel_all = slot[None, :] - pad[:, None]  # [B, S] position of each cache slot in its sequence
    valid = rel_all >= 0
    out = torch.zeros(B, max_new_tokens, dtype=torch.long, device=dev)
    done = torch.zeros(B, dtype=torch.bool, device=dev)
    lengths = torch.full((B,), max_new_tokens, dtype=torch.long, device=dev)
    stop = torch.tensor(stop_ids, device=dev)
    with torch.autocast(dev.type, dtype=dtype, enabled=dev.type == "cuda"):
        # Prefill: causal over the padded block, pads masked.
        mask = (slot[None, None, :P, None] >= slot[None, None, None, :P]) & valid[:, None, None, :P]
        mask = mask | torch.eye(P, dtype=torch.bool, device=dev)[None, None]  # pad rows see self
        h = model.hidden(ids, rel_all[:, :P].clamp(min=0), [(k, v, 0) for k, v, _ in caches], mask)
        nxt = model.logits(h[:, -1]).argmax(-1)
        for t in range(max_new_tokens):
            out[:, t] = nxt
            hit = torch.isin(nxt, stop) & ~done
            lengths[hit] = t
            done |= hit
            if bool(done.all()) or t + 1 == max_new_tokens:
                break
            cur = P + t  # cache slot of this token
            pos = (cur - pad)[:, None]
            keys = valid[:, :cur + 1]
            if sink is not None:
                rel = rel_all[:, :cur + 1]
                keys = keys & ((rel < sink) | (rel > pos - window))
            h = model.hidden(nxt[:, None], pos, [(k, v, cur) for k, v, _ in caches], keys[:, None, None, :])
            nxt = model.logits(h[:, -1]).argmax(-1)
    return [out[i, :int(lengths[i])].tolist() for i in range(B)]

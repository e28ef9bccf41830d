#!/usr/bin/env python3
# File: tools/py/pad_heads.py
# Writes a copy of a Llama-architecture GGUF with extra attention heads that change nothing:
# the new query, key and value rows are zero and the output projection's new input columns
# are zero, so each added head contributes exactly 0 to the residual stream and the model
# computes the same function (the engine's logits agree to fp32 rounding). The point is a
# real model whose head counts divide a tensor-parallel size: SmolLM2-135M has 9 query / 3
# KV heads, which split over 3 ranks only; padded to 12 / 4 it splits over 2 and 4, so the
# end-to-end client test (which needs a real model: chat answers that end, repetitive text
# for the monitor) can run with --tensor-parallel 2 on two GPUs.
#
# The query heads per KV head must stay the same (the original heads keep their KV head);
# added query heads attend the added KV heads. Block-quantized tensors stay in their format:
# a block of zero bytes is zero in every GGML type used for these weights.
#
#   pad_heads.py IN.gguf OUT.gguf --heads 12 --kv-heads 4
import argparse
import sys

import numpy as np

try:
    import gguf
except ImportError:  # pragma: no cover
    sys.exit("pad_heads.py needs the gguf package (pip install gguf; tools/requirements.txt)")


def fail(msg):
    sys.exit(f"pad_heads.py: {msg}")


def field_value(field):
    types = [gguf.GGUFValueType(t) for t in field.types]
    if types[0] == gguf.GGUFValueType.ARRAY:
        if len(types) > 2:
            fail(f"{field.name}: nested arrays are not supported")
        return field.contents(), types[0], types[1]
    return field.contents(), types[0], None


def pad_rows(data, rows):
    """Appends zero rows: data is [rows, row_bytes] (uint8) or [rows, cols] (float)."""
    extra = rows - data.shape[0]
    return np.concatenate([data, np.zeros((extra,) + data.shape[1:], dtype=data.dtype)], axis=0)


def pad_cols(data, old_cols, new_cols, name):
    """Appends zero input columns to every row; block formats need whole blocks."""
    if data.dtype == np.uint8:  # raw quantized rows
        row_bytes = data.shape[1]
        if (row_bytes * new_cols) % old_cols != 0:
            fail(f"{name}: {new_cols - old_cols} extra columns are not whole blocks")
        extra = row_bytes * new_cols // old_cols - row_bytes
    else:
        extra = new_cols - old_cols
    return np.concatenate([data, np.zeros((data.shape[0], extra), dtype=data.dtype)], axis=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--heads", type=int, required=True, help="query heads of the output model")
    ap.add_argument("--kv-heads", type=int, required=True, help="KV heads of the output model")
    args = ap.parse_args()

    r = gguf.GGUFReader(args.src)
    arch = r.fields["general.architecture"].contents()
    if arch != "llama":
        fail(f"general.architecture is {arch!r}; only llama GGUFs are handled")
    heads = r.fields[f"{arch}.attention.head_count"].contents()
    kv_heads = r.fields[f"{arch}.attention.head_count_kv"].contents()
    hidden = r.fields[f"{arch}.embedding_length"].contents()
    head_dim = hidden // heads
    if f"{arch}.attention.key_length" in r.fields:
        head_dim = r.fields[f"{arch}.attention.key_length"].contents()
    if args.heads < heads or args.kv_heads < kv_heads:
        fail(f"--heads {args.heads} / --kv-heads {args.kv_heads} are fewer than the model's {heads} / {kv_heads}")
    if args.heads % args.kv_heads != 0 or args.heads // args.kv_heads != heads // kv_heads:
        fail(f"--heads {args.heads} / --kv-heads {args.kv_heads} must keep {heads // kv_heads} query heads per "
             f"KV head (the model's {heads} / {kv_heads})")

    w = gguf.GGUFWriter(args.dst, arch)
    for name, field in r.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        val, vtype, sub = field_value(field)
        if name == f"{arch}.attention.head_count":
            val = args.heads
        elif name == f"{arch}.attention.head_count_kv":
            val = args.kv_heads
        w.add_key_value(name, val, vtype, sub)

    if f"{arch}.attention.key_length" not in r.fields:  # it was hidden / heads: say it outright
        w.add_key_value(f"{arch}.attention.key_length", head_dim, gguf.GGUFValueType.UINT32)
        w.add_key_value(f"{arch}.attention.value_length", head_dim, gguf.GGUFValueType.UINT32)

    q_rows, kv_rows = args.heads * head_dim, args.kv_heads * head_dim
    padded = 0
    for t in r.tensors:
        data = np.array(t.data)
        ttype = t.tensor_type
        if t.name.endswith(("attn_q.weight", "attn_q.bias")):
            data = pad_rows(data, q_rows)
            padded += 1
        elif t.name.endswith(("attn_k.weight", "attn_v.weight", "attn_k.bias", "attn_v.bias")):
            data = pad_rows(data, kv_rows)
            padded += 1
        elif t.name.endswith("attn_output.weight"):
            data = pad_cols(data, heads * head_dim, q_rows, t.name)
            padded += 1
        if ttype in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16):
            w.add_tensor(t.name, data)
        else:
            w.add_tensor(t.name, data, raw_dtype=ttype)
    if padded == 0:
        fail("no attention tensors found")
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {args.dst}: {heads}/{kv_heads} -> {args.heads}/{args.kv_heads} heads of {head_dim}, "
          f"{padded} tensors padded")


if __name__ == "__main__":
    main()

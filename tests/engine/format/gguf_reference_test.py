# File: tests/engine/format/gguf_reference_test.py
# Checks lil_format's GGUF reader and dequantization against the gguf package: a synthetic
# file with every metadata type and every supported tensor type, then the real SmolLM2 file.
# Usage: gguf_reference_test.py PATH/TO/format_probe
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q, GGUFValueType as V
from gguf import quants

PROBE = sys.argv[1]
ROOT = os.environ.get("LILSERVE_ROOT", os.getcwd())
failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print("FAIL:", msg)


def probe(path, outdir, names=(), bf16=False):
    cmd = [PROBE, "gguf", path, outdir] + (["--bf16"] if bf16 else []) + list(names)
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        print("format_probe failed:", r.stderr)
        sys.exit(1)
    with open(os.path.join(outdir, "meta.json")) as f:
        return json.load(f)


def f16_scale(rng, n):
    # Finite, moderate f16 scales so raw random blocks dequantize to ordinary floats.
    return (rng.uniform(0.001, 0.05, n) * rng.choice([-1, 1], n)).astype(np.float16).view(np.uint8).reshape(n, 2)


def raw_k_blocks(rng, qtype, n_blocks):
    """Random K-quant blocks with valid structure (the package cannot quantize these)."""
    rnd = lambda k: rng.integers(0, 256, (n_blocks, k), dtype=np.uint8)
    if qtype == Q.Q4_K:   # d, dmin, scales[12], qs[128]
        return np.concatenate([f16_scale(rng, n_blocks), f16_scale(rng, n_blocks), rnd(12), rnd(128)], axis=1)
    if qtype == Q.Q5_K:   # d, dmin, scales[12], qh[32], qs[128]
        return np.concatenate([f16_scale(rng, n_blocks), f16_scale(rng, n_blocks), rnd(12), rnd(32), rnd(128)], axis=1)
    if qtype == Q.Q6_K:   # ql[128], qh[64], scales[16], d
        return np.concatenate([rnd(128), rnd(64), rnd(16), f16_scale(rng, n_blocks)], axis=1)
    raise ValueError(qtype)


def expected_bf16(x):
    # Round-to-nearest-even f32 -> bf16 bits (NaN not present here).
    b = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    return ((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype(np.uint16)


def synthetic_test(tmp):
    rng = np.random.default_rng(1234)
    path = os.path.join(tmp, "synthetic.gguf")
    w = gguf.GGUFWriter(path, "llama")
    scalars = {
        "t.u8": (200, V.UINT8), "t.i8": (-100, V.INT8), "t.u16": (60000, V.UINT16), "t.i16": (-30000, V.INT16),
        "t.u32": (4000000000, V.UINT32), "t.i32": (-2000000000, V.INT32), "t.f32": (0.1, V.FLOAT32),
        "t.bool": (True, V.BOOL), "t.str": ("héllo wörld", V.STRING), "t.u64": (2**40 + 3, V.UINT64),
        "t.i64": (-(2**40) - 5, V.INT64), "t.f64": (1e-300, V.FLOAT64),
    }
    for k, (v, t) in scalars.items():
        w.add_key_value(k, v, t)
    w.add_key_value("t.arr_i32", [1, -2, 3], V.ARRAY)
    w.add_key_value("t.arr_f32", [0.5, -1.25], V.ARRAY)
    w.add_key_value("t.arr_str", ["a", "bc", ""], V.ARRAY)
    w.add_key_value("t.arr_bool", [True, False], V.ARRAY)
    w.add_key_value("t.nested", [[1, 2], [3]], V.ARRAY, sub_type=V.ARRAY)
    tokens = ["<s>", "</s>", "a", "b", "ab"]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types([3, 3, 1, 1, 1])
    w.add_token_merges(["a b"])
    w.add_bos_token_id(0)
    w.add_eos_token_id(1)
    w.add_add_bos_token(True)
    w.add_chat_template("{{ messages }}")

    expected = {}
    shapes = {Q.F32: (3, 64), Q.F16: (5, 32), Q.BF16: (2, 3, 32), Q.Q8_0: (4, 96), Q.Q4_0: (3, 64),
              Q.Q4_1: (6, 32), Q.Q5_0: (2, 128), Q.Q5_1: (3, 64), Q.Q4_K: (3, 512), Q.Q5_K: (2, 256),
              Q.Q6_K: (4, 256)}
    for qtype, shape in shapes.items():
        name = f"w.{qtype.name}"
        x = rng.standard_normal(shape).astype(np.float32)
        if qtype in (Q.Q4_K, Q.Q5_K, Q.Q6_K):
            rows = int(np.prod(shape[:-1]))
            nb = shape[-1] // 256
            raw = raw_k_blocks(rng, qtype, rows * nb).reshape(rows, -1)
        elif qtype == Q.F32:
            raw = x.reshape(-1, shape[-1])
        elif qtype == Q.F16:
            raw = x.astype(np.float16).reshape(-1, shape[-1])
        else:
            raw = quants.quantize(x.reshape(-1, shape[-1]), qtype)
        if qtype in (Q.F32, Q.F16):
            w.add_tensor(name, raw.reshape(shape))
        else:
            w.add_tensor(name, raw.reshape(shape[:-1] + (raw.shape[-1],)), raw_dtype=qtype)
        expected[name] = (qtype, list(shape), quants.dequantize(raw, qtype).astype(np.float32).reshape(shape))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    out = os.path.join(tmp, "syn")
    os.makedirs(out)
    meta = probe(path, out, bf16=True)
    kv = meta["kv"]
    for k, (v, t) in scalars.items():
        got = kv.get(k)
        if t == V.FLOAT32:
            check(got == float(np.float32(v)), f"{k}: got {got}, want {np.float32(v)}")
        else:
            check(got == v, f"{k}: got {got!r}, want {v!r}")
    check(kv["t.arr_i32"] == [1, -2, 3], f"t.arr_i32 = {kv['t.arr_i32']}")
    check(kv["t.arr_f32"] == [0.5, -1.25], f"t.arr_f32 = {kv['t.arr_f32']}")
    check(kv["t.arr_str"] == ["a", "bc", ""], f"t.arr_str = {kv['t.arr_str']}")
    check(kv["t.arr_bool"] == [True, False], f"t.arr_bool = {kv['t.arr_bool']}")
    check(kv["t.nested"] == [[1, 2], [3]], f"t.nested = {kv['t.nested']}")
    check(meta["kv_types"]["t.nested"] == "array[array[i32]]", f"nested type {meta['kv_types']['t.nested']}")
    tok = meta.get("tokenizer", {})
    want_tok = {"model": "gpt2", "pre": "smollm", "n_tokens": 5, "n_merges": 1, "n_token_types": 5,
                "bos": 0, "eos": 1, "add_bos": True, "add_eos": False, "chat_template": "{{ messages }}"}
    for k, v in want_tok.items():
        check(tok.get(k) == v, f"tokenizer.{k}: got {tok.get(k)!r}, want {v!r} ({meta.get('tokenizer_error')})")

    by_name = {t["name"]: (i, t) for i, t in enumerate(meta["tensors"])}
    for name, (qtype, shape, want) in expected.items():
        i, t = by_name[name]
        check(t["dtype"] == qtype.name, f"{name}: dtype {t['dtype']}")
        check(t["shape"] == shape, f"{name}: shape {t['shape']} want {shape}")
        got = np.fromfile(os.path.join(out, f"{i}.f32"), dtype=np.float32).reshape(shape)
        err = float(np.max(np.abs(got - want)))
        scale = float(np.max(np.abs(want)))
        check(np.allclose(got, want, rtol=1e-6, atol=1e-6 * scale), f"{name}: max abs diff {err} (max |x| {scale})")
        gotb = np.fromfile(os.path.join(out, f"{i}.bf16"), dtype=np.uint16).reshape(shape)
        check(np.array_equal(gotb, expected_bf16(got)), f"{name}: BF16 conversion differs from RNE rounding")
        print(f"synthetic {name:8s} {str(shape):14s} max|diff| {err:.3g}")


def smollm_test(tmp):
    path = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
    if not os.path.exists(path):
        print("SKIP real-model part: no", path)
        return
    names = ["token_embd.weight", "blk.0.attn_q.weight", "blk.0.ffn_down.weight", "blk.29.attn_k.weight",
             "blk.0.attn_norm.weight", "output_norm.weight"]
    out = os.path.join(tmp, "smol")
    os.makedirs(out)
    meta = probe(path, out, names)
    reader = gguf.GGUFReader(path)
    check(meta["version"] == 3, f"version {meta['version']}")
    check(len(meta["tensors"]) == len(reader.tensors), f"{len(meta['tensors'])} tensors, reader has {len(reader.tensors)}")
    by_name = {t["name"]: (i, t) for i, t in enumerate(meta["tensors"])}
    for rt in reader.tensors:
        i, t = by_name[rt.name]
        check(t["dtype"] == rt.tensor_type.name, f"{rt.name}: dtype {t['dtype']} vs {rt.tensor_type.name}")
        check(t["shape"] == [int(d) for d in reversed(rt.shape)], f"{rt.name}: shape {t['shape']} vs {list(rt.shape)}")
        check(t["nbytes"] == int(rt.n_bytes), f"{rt.name}: nbytes {t['nbytes']} vs {rt.n_bytes}")
        if rt.name in names:
            want = quants.dequantize(rt.data, rt.tensor_type).astype(np.float32).reshape(t["shape"])
            got = np.fromfile(os.path.join(out, f"{i}.f32"), dtype=np.float32).reshape(t["shape"])
            err = float(np.max(np.abs(got - want)))
            check(np.allclose(got, want, rtol=1e-6, atol=1e-6 * float(np.max(np.abs(want)))),
                  f"{rt.name}: max abs diff {err}")
            print(f"smollm {rt.name:24s} {rt.tensor_type.name:5s} {str(t['shape']):14s} max|diff| {err:.3g}")
    kv = meta["kv"]
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        want = field.contents()
        got = kv.get(key)
        if field.types[0] == V.FLOAT32:
            want = float(np.float32(want))
        check(got == want, f"metadata {key}: got {str(got)[:80]} want {str(want)[:80]}")
    tok = meta["tokenizer"]
    check(tok["model"] == "gpt2" and tok["pre"] == "smollm", f"tokenizer model/pre {tok['model']}/{tok['pre']}")
    check(tok["n_tokens"] == 49152 and tok["n_merges"] == 48900, f"tokens {tok['n_tokens']} merges {tok['n_merges']}")
    check(tok["bos"] == kv["tokenizer.ggml.bos_token_id"] and tok["eos"] == kv["tokenizer.ggml.eos_token_id"],
          "bos/eos ids")
    check(tok["chat_template"] == kv["tokenizer.chat_template"] and len(tok["chat_template"]) > 50, "chat template")


with tempfile.TemporaryDirectory() as tmp:
    synthetic_test(tmp)
    smollm_test(tmp)
if failures:
    print(f"{len(failures)} check(s) failed")
    sys.exit(1)
print("OK: GGUF metadata, tensors and dequantization match the gguf package")

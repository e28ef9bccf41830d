# File: tests/fuzz/make_seeds.py
# Writes the seed corpus of the fuzz targets (tests/fuzz/corpus/<target>/seed-*): small valid
# inputs that reach deep into each parser. Run from the repository root with the project venv:
#   .venv/bin/python tests/fuzz/make_seeds.py
# Crash reproducers (crash-*) found by tools/fuzz.sh are kept beside the seeds by hand.
import json
import os
import struct
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus")


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def safetensors_file(tensors, metadata=None):
    header, blobs, off = {}, [], 0
    for name, arr, dtype in tensors:
        raw = arr.tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def seeds_safetensors():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    put("safetensors", "f32", safetensors_file([("w", a, "F32")]))
    h = np.arange(6, dtype=np.float16).reshape(2, 3)
    bf = (np.arange(8, dtype=np.float32).view(np.uint32) >> 16).astype(np.uint16)
    put("safetensors", "f16-bf16-meta", safetensors_file(
        [("model.embed_tokens.weight", h, "F16"), ("model.norm.weight", bf, "BF16")],
        {"format": "pt"}))
    put("safetensors", "empty", safetensors_file([]))
    put("safetensors", "scalar", safetensors_file([("s", np.array(1.5, dtype=np.float32), "F32")]))


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def byte_level_tokenizer():
    b2u = bytes_to_unicode()
    vocab = {b2u[b]: b for b in range(256)}
    merges = [("h", "e"), ("he", "l"), ("hel", "l"), ("hell", "o"), ("Ġ", "w")]
    for i, (a, b) in enumerate(merges):
        vocab[a + b] = 256 + i
    return {
        "version": "1.0",
        "added_tokens": [
            {"id": 300, "content": "<|end|>", "special": True, "normalized": False,
             "lstrip": False, "rstrip": False, "single_word": False},
            {"id": 301, "content": "<tool>", "special": False, "normalized": False,
             "lstrip": True, "rstrip": True, "single_word": False}],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True},
        "post_processor": {"type": "ByteLevel"},
        "decoder": {"type": "ByteLevel"},
        "model": {"type": "BPE", "vocab": vocab, "merges": [a + " " + b for a, b in merges]},
    }


def sentencepiece_tokenizer():
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab["<0x%02X>" % b] = 3 + b
    for i, t in enumerate(["▁", "h", "e", "l", "o", "w", "r", "d", "▁h", "he", "ll", "llo", "▁hello"]):
        vocab[t] = 259 + i
    return {
        "version": "1.0",
        "added_tokens": [{"id": 0, "content": "<unk>", "special": True},
                         {"id": 1, "content": "<s>", "special": True},
                         {"id": 2, "content": "</s>", "special": True}],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
        "pre_tokenizer": None,
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                      {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [{"Sequence": {"id": "A", "type_id": 0}}],
                           "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "byte_fallback": True, "fuse_unk": True, "unk_token": "<unk>", "vocab": vocab,
                  "merges": ["▁ h", "h e", "l l", "ll o", "▁h e"]},
    }


def seeds_tokenizer_json():
    put("tokenizer_json", "byte-level", json.dumps(byte_level_tokenizer(), ensure_ascii=False))
    put("tokenizer_json", "sentencepiece", json.dumps(sentencepiece_tokenizer(), ensure_ascii=False))
    qwen_like = byte_level_tokenizer()
    qwen_like["normalizer"] = {"type": "NFC"}
    qwen_like["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"},
         "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]}
    put("tokenizer_json", "split-regex-nfc", json.dumps(qwen_like, ensure_ascii=False))


def seeds_gguf():
    import gguf
    b2u = bytes_to_unicode()
    tokens = [b2u[b] for b in range(256)] + ["he", "hel", "<|im_start|>", "<|im_end|>"]
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "tiny.gguf")
        w = gguf.GGUFWriter(path, "llama")
        w.add_block_count(1)
        w.add_context_length(64)
        w.add_embedding_length(32)
        w.add_feed_forward_length(64)
        w.add_head_count(2)
        w.add_head_count_kv(1)
        w.add_layer_norm_rms_eps(1e-5)
        w.add_rope_freq_base(10000.0)
        w.add_vocab_size(len(tokens))
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("smollm")
        w.add_token_list(tokens)
        w.add_token_types([1] * 256 + [1, 1, 3, 3])
        w.add_token_merges(["h e", "he l"])
        w.add_bos_token_id(258)
        w.add_eos_token_id(259)
        w.add_chat_template("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}")
        w.add_array("general.tags", ["a", "b"])
        w.add_tensor("token_embd.weight", np.arange(64, dtype=np.float32).reshape(2, 32))
        w.add_tensor("output_norm.weight", np.ones(32, dtype=np.float16))
        q8 = np.zeros(34, dtype=np.uint8)
        q8[0:2] = np.frombuffer(np.float16(0.5).tobytes(), dtype=np.uint8)
        q8[2:] = np.arange(32, dtype=np.int8).view(np.uint8)
        w.add_tensor("blk.0.attn_q.weight", q8, raw_shape=(1, 34), raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        q41 = np.zeros(20, dtype=np.uint8)
        q41[0:2] = np.frombuffer(np.float16(0.25).tobytes(), dtype=np.uint8)
        q41[4:] = np.arange(16, dtype=np.uint8)
        w.add_tensor("blk.0.attn_k.weight", q41, raw_shape=(1, 20), raw_dtype=gguf.GGMLQuantizationType.Q4_1)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        with open(path, "rb") as f:
            data = f.read()
    put("gguf", "tiny-llama", data)
    put("gguf", "header-only", data[:24])


def seeds_tokenizer():
    texts = ["Hello world", "The quick brown fox jumps over the lazy dog.\n\n",
             "<|im_start|>user\nhi<|im_end|>\n", "héllo wörld ñ 日本語 🙂 \u0301e",
             "   leading and trailing spaces   ", "1234567890 3.14 $%&*()", "\xff\xfe bad bytes",
             "tab\tnew\r\nline", "a" * 200]
    for i, t in enumerate(texts):
        raw = t.encode("utf-8", "surrogateescape") if isinstance(t, str) else t
        for mode in (0x00, 0x01, 0x40, 0x21):
            put("tokenizer", f"text{i}-m{mode:02x}", bytes([mode]) + raw)
    ids = struct.pack("<8i", 1, 2, 200, 49151, 49152, -1, 0x7fffffff, 6)
    put("tokenizer", "ids-m80", bytes([0x80]) + ids)
    put("tokenizer", "ids-m81", bytes([0xA1]) + ids)
    utf8_split = struct.pack("<4i", 156, 227, 129, 234)  # byte tokens of a split character
    put("tokenizer", "ids-bytes", bytes([0x80]) + utf8_split)


def seeds_chat_template():
    tdir = os.path.join(ROOT, "tests", "engine", "chat_template", "templates")
    msgs = b"\0You are helpful.\0Hi there!\0Hello! How can I help?\0What is 2+2?"
    for name in sorted(os.listdir(tdir)):
        if name.endswith(".jinja"):
            with open(os.path.join(tdir, name), "rb") as f:
                put("chat_template", name, b"\x02" + f.read() + msgs)
    smol = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
            "{{ '<|im_start|>system\nYou are a helpful AI assistant<|im_end|>\n' }}{% endif %}"
            "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
            "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
    put("chat_template", "smollm2", b"\x02" + smol.encode() + msgs)
    features = ("{% set ns = namespace(n=0) %}{% macro m(x, y=2) %}[{{ x ~ y }}]{% endmacro %}"
                "{% for i in range(3) if i != 1 %}{{ m(i) }}{{ loop.index }}{% set ns.n = ns.n + i %}{% endfor %}"
                "{{ ns.n }}{{ messages | length }}{{ messages[0].content | upper | replace('A', 'b') }}"
                "{{ 'x' if bos_token else 'y' }}{{ {'k': [1, 2.5, none, true]} | tojson }}"
                "{% if messages[-1]['content'].startswith('W') %}w{% elif 1 < 2 %}e{% else %}n{% endif %}"
                "{{ raise_exception('no') if false }}{{ '%d' | format(3) }}{{ 'a,b'.split(',') | join('-') }}"
                "{%- generation -%}g{%- endgeneration -%}{{ strftime_now('%Y') | length }}")
    put("chat_template", "features", b"\x00" + features.encode() + msgs)
    put("chat_template", "model-mode", b"\x01" + msgs[1:] + b"\0{% include 'x' %}\0{{ 7*7 }}")
    put("chat_template", "model-mode-empty", b"\x03")


def seeds_request():
    from grpc_tools import protoc
    with tempfile.TemporaryDirectory() as d:
        if protoc.main(["protoc", "-I" + os.path.join(ROOT, "proto"), "--python_out=" + d,
                        os.path.join(ROOT, "proto", "lilserve", "v1", "lilserve.proto")]) != 0:
            sys.exit("protoc failed")
        sys.path.insert(0, d)
        from lilserve.v1 import lilserve_pb2 as pb
        reqs = {
            "prompt": pb.GenerateRequest(request_id="r1", prompt="Hello there"),
            "messages": pb.GenerateRequest(messages=pb.Messages(messages=[
                pb.ChatMessage(role="system", content="Be brief."),
                pb.ChatMessage(role="user", content="Name three colors.")])),
            "token-ids": pb.GenerateRequest(token_ids=pb.TokenIds(ids=[1, 2, 3, 49151])),
            "all-params": pb.GenerateRequest(
                prompt="x", priority=5,
                sampling=pb.SamplingParams(temperature=0.7, top_k=40, top_p=0.9, min_p=0.05,
                                           repetition_penalty=1.1, seed=7, logprobs=5),
                stopping=pb.StoppingParams(max_tokens=64, min_tokens=2, stop=["\n\n", "END"],
                                           stop_token_ids=[2], ignore_eos=True, time_limit_ms=1000),
                sparse=pb.SparseParams(mode=pb.H2O, budget_tokens=64, sink_tokens=16, window_tokens=16),
                monitor=pb.MonitorParams(mode=pb.CONCLUDE, interval_tokens=32, min_gain_bytes=20,
                                         conclusion_text="\nFinal answer:", conclusion_max_tokens=8)),
            "sink": pb.GenerateRequest(prompt="y", sparse=pb.SparseParams(mode=pb.SINK, window_tokens=32)),
            "bad-top-p": pb.GenerateRequest(prompt="x", sampling=pb.SamplingParams(top_p=1.5)),
            "too-long": pb.GenerateRequest(token_ids=pb.TokenIds(ids=[5] * 100)),
            "empty": pb.GenerateRequest(),
        }
        for name, r in reqs.items():
            put("request", name, r.SerializeToString())


if __name__ == "__main__":
    seeds_safetensors()
    seeds_tokenizer_json()
    seeds_gguf()
    seeds_tokenizer()
    seeds_chat_template()
    seeds_request()
    for t in sorted(os.listdir(CORPUS)):
        files = os.listdir(os.path.join(CORPUS, t))
        size = sum(os.path.getsize(os.path.join(CORPUS, t, f)) for f in files)
        print(f"{t}: {len(files)} files, {size} bytes")

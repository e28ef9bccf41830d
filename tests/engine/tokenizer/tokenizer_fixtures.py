# File: tests/engine/tokenizer/tokenizer_fixtures.py
# Builds the tokenizer files the parity test compares on: SmolLM2 converted from the GGUF by
# transformers, SentencePiece-style BPE tokenizers trained here with the `tokenizers` library
# (Llama 2 style normalizer + byte fallback, and a Metaspace variant), a GGUF holding only a
# "llama" tokenizer, and Llama 3 with the TemplateProcessing post-processor Meta ships.
import json
import os

SPACE = "\u2581"


def smollm2_converted(root, out_dir):
    """tokenizer.json + config as transformers converts them from the GGUF (offline)."""
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(os.path.join(root, "models"),
                                        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
    tok.save_pretrained(out_dir)
    return out_dir


def smollm2_original_pre(converted_dir, out_path):
    """The converted file with SmolLM2's own pre-tokenizer (Digits + ByteLevel), which GGUF
    records as pre="smollm" but transformers' conversion drops: the reference for FromSpec."""
    with open(os.path.join(converted_dir, "tokenizer.json"), encoding="utf-8") as f:
        j = json.load(f)
    j["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": True},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]}
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(j, f, ensure_ascii=False)
    return out_path


def llama3_with_bos(llama3_dir, out_dir):
    with open(os.path.join(llama3_dir, "tokenizer.json"), encoding="utf-8") as f:
        j = json.load(f)
    bos = "<|begin_of_text|>"
    j["post_processor"] = {"type": "Sequence", "processors": [
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        {"type": "TemplateProcessing",
         "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
         "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                  {"SpecialToken": {"id": bos, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
         "special_tokens": {bos: {"id": bos, "ids": [128000], "tokens": [bos]}}}]}
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(j, f, ensure_ascii=False)
    return out_dir


def train_spm_bpe(training_lines, vocab_size=1500):
    """A SentencePiece-style BPE (byte_fallback, <0xAB> tokens in the model vocab), trained on
    the given lines; returns its tokenizer.json as a dict (Llama 2 layout)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=SPACE, prepend_scheme="always")
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<unk>", "<s>", "</s>"],
                                  limit_alphabet=120, show_progress=False)
    tok.train_from_iterator(training_lines, trainer)
    j = json.loads(tok.to_str())
    vocab = j["model"]["vocab"]
    for b in range(256):
        vocab.setdefault("<0x%02X>" % b, len(vocab))
    j["normalizer"] = {"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": SPACE},
        {"type": "Replace", "pattern": {"String": " "}, "content": SPACE}]}
    j["pre_tokenizer"] = None
    j["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": SPACE}, "content": " "},
        {"type": "ByteFallback"}, {"type": "Fuse"},
        {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
    j["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"<s>": {"id": "<s>", "ids": [vocab["<s>"]], "tokens": ["<s>"]}}}
    return j


def metaspace_variant(spm_json):
    """Same model with the newer layout: Metaspace pre-tokenizer (prepend_scheme first) and a
    Metaspace decoder after ByteFallback."""
    j = json.loads(json.dumps(spm_json))
    j["normalizer"] = None
    j["pre_tokenizer"] = {"type": "Metaspace", "replacement": SPACE, "prepend_scheme": "first",
                          "split": True}
    j["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "ByteFallback"}, {"type": "Metaspace", "replacement": SPACE, "prepend_scheme": "first",
                                   "split": True}]}
    return j


def write_json(j, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(j, f, ensure_ascii=False)
    return out_dir


def spm_gguf_and_reference(spm_json, out_dir):
    """A GGUF with only a "llama" (SentencePiece) tokenizer built from the trained model:
    scores = -(rank of the merge that creates the token), byte tokens type 6, control type 3.
    The reference tokenizer.json derives merges from scores the way transformers'
    SentencePiece converter does (every split of every piece, by the piece's score)."""
    import gguf
    vocab = spm_json["model"]["vocab"]
    tokens = [None] * len(vocab)
    for t, i in vocab.items():
        tokens[i] = t
    created = {}
    for rank, m in enumerate(spm_json["model"]["merges"]):
        a, b = m if isinstance(m, list) else m.split(" ", 1)
        created.setdefault(a + b, rank)
    scores, types = [], []
    for t in tokens:
        if t in ("<s>", "</s>"):
            types.append(3)
        elif t == "<unk>":
            types.append(2)
        elif len(t) == 6 and t.startswith("<0x") and t.endswith(">"):
            types.append(6)
        else:
            types.append(1)
        scores.append(-float(created.get(t, 0)) if t in created else -1e9 + len(scores))
    path = os.path.join(out_dir, "spm_tokenizer_only.gguf")
    w = gguf.GGUFWriter(path, "llama")
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(vocab["<s>"])
    w.add_eos_token_id(vocab["</s>"])
    w.add_unk_token_id(vocab["<unk>"])
    w.add_add_bos_token(True)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    # Reference: merges from scores (highest-scoring merged piece first).
    mergeable = {t for t, ty in zip(tokens, types) if ty == 1}
    order = sorted((i for i, t in enumerate(tokens) if t in mergeable), key=lambda i: -scores[i])
    merges = []
    for i in order:
        t = tokens[i]
        for k in range(1, len(t)):
            if t[:k] in vocab and t[k:] in vocab:
                merges.append([t[:k], t[k:]])
    ref = json.loads(json.dumps(spm_json))
    ref["model"]["merges"] = merges
    ref["model"]["fuse_unk"] = False
    ref["added_tokens"] = [{"id": vocab[t], "content": t, "single_word": False, "lstrip": False,
                            "rstrip": False, "normalized": False, "special": True}
                           for t in ("<s>", "</s>")]
    return path, ref

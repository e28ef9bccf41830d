# File: models/lilchain/lilchain_tokenizer.py
# LilChain's own byte-level BPE tokenizer (HuggingFace tokenizers), trained on the English
# corpus plus generated problems. The pre-tokenizer is Qwen2's regex with one change: digits
# go in groups of up to two with one optional space before them (Qwen2: one digit alone), so
# a chain's number " 47" is one token, looked up like a name (lilchain_data.py); the corpus
# holds every such number often enough that BPE merges each one. "\n" stays apart from the
# words after it; every node name becomes the single token " kemo" (the task writes a name
# after a space everywhere, line starts included). The build checks all three.
import random

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

import lilchain_data as data

# Qwen2's pre-tokenizer pattern (letters with one optional leading non-letter), digits in
# groups of up to two with one optional leading space (Qwen2: "\p{N}", one digit).
VALUE_REPEATS = 200
SPLIT_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+| ?\p{N}{1,2}"
                 r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def _corpus(paragraphs, problems, seed):
    rng = random.Random(seed)
    for _ in range(VALUE_REPEATS):  # every chain number, so that BPE makes each one token
        yield "".join(f" {v}" for v in data.VALUES)
    for p in problems:
        yield data.render_chat([{"role": "user", "content": p["prompt"]}]) + p["cot"] + data.IM_END
    order = list(range(len(paragraphs)))
    rng.shuffle(order)
    for i in order:
        yield paragraphs[i]


def build(paragraphs, vocab_size=6144, num_problems=3000, seed=7):
    """Trains the tokenizer; returns a tokenizers.Tokenizer."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2,
                                  special_tokens=list(data.SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    problems = data.problem_set(seed, num_problems)
    tok.train_from_iterator(_corpus(paragraphs, problems, seed), trainer=trainer)
    for i, s in enumerate(data.SPECIAL_TOKENS):
        assert tok.token_to_id(s) == i, f"special token {s} got id {tok.token_to_id(s)}, wanted {i}"
    return tok


def check(tok):
    """Facts the task relies on; returns a dict for the log (raises on a broken tokenizer)."""
    multi = [n for n in data.NAMES if len(tok.encode(" " + n).ids) != 1]
    a, b = data.NAMES[0], data.NAMES[1]
    line = tok.encode("\n" + data.link_line(a, b) + "\n").ids
    want = [tok.token_to_id("\u010a"), tok.token_to_id("\u0120" + a), tok.token_to_id("\u0120" + b),
            tok.token_to_id("\u010a")]  # byte-level "\n", " a", " b", "\n"
    if line != want:
        raise RuntimeError(f"a link line is not newline, name, name, newline: {tok.encode(data.link_line(a, b)).tokens}")
    split = [v for v in data.VALUES if len(tok.encode(f" {v}").ids) != 1]
    if split:
        raise RuntimeError(f"values that are not one token \" NN\": {split[:10]}")
    value = tok.encode(data.value_line(a, 47)).ids
    if value != [tok.token_to_id("\u0120" + a), tok.token_to_id("\u012047")]:
        raise RuntimeError(f"a value line is not name, number: {tok.encode(data.value_line(a, 47)).tokens}")
    text = data.render_chat([{"role": "user", "content": " kemo tali\n vora 47"}]) + "x"
    if tok.decode(tok.encode(text).ids, skip_special_tokens=False) != text:
        raise RuntimeError("the tokenizer does not round-trip a chat prompt")
    return {"vocab_size": tok.get_vocab_size(), "names": len(data.NAMES),
            "names_not_single_token": len(multi), "examples_not_single": multi[:10]}

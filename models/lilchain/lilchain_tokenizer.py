# File: models/lilchain/lilchain_tokenizer.py
# LilChain's own byte-level BPE tokenizer (HuggingFace tokenizers), trained on the English
# corpus plus generated problems. The pre-tokenizer is Qwen2's regex, which splits every
# digit on its own (numbers are read digit by digit) and keeps "\n" apart from the words
# after it; the node names become single tokens in both forms ("kemo" at a line start,
# " kemo" after the first name of a link line), which the build checks.
import random

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

import lilchain_data as data

# Qwen2's pre-tokenizer pattern (single digits, letters with one optional leading non-letter).
SPLIT_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
                 r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def _corpus(paragraphs, problems, seed):
    rng = random.Random(seed)
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
    multi = [n for n in data.NAMES
             if len(tok.encode(n).ids) != 1 or len(tok.encode(" " + n).ids) != 1]
    digits = tok.encode("Answer: 417").tokens
    if digits[-3:] != ["4", "1", "7"]:
        raise RuntimeError(f"numbers are not split into digits: {digits}")
    text = data.render_chat([{"role": "user", "content": "kemo tali\nvora = 417"}]) + "x"
    if tok.decode(tok.encode(text).ids, skip_special_tokens=False) != text:
        raise RuntimeError("the tokenizer does not round-trip a chat prompt")
    return {"vocab_size": tok.get_vocab_size(), "names": len(data.NAMES),
            "names_not_single_token": len(multi), "examples_not_single": multi[:10]}

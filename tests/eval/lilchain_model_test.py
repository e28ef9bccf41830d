# File: tests/eval/lilchain_model_test.py
# The shipped LilChain model (models/lilchain/hf) served by the real daemon on CPU, through
# `lilctl eval`, on the 4 held-out problems (seed 2) with the shortest main chains:
#   dense, greedy: every answer right and the whole output equal to the reference chain of
#     thought (the link lines and "Answer: NN"; generation ends at <|im_end|>, which is not
#     part of the text), streamed tokens = usage tokens;
#   sink, budget 64 (16 sink + 48 recent tokens; the prompt alone is ~110 tokens): no more
#     right answers than dense, and at least one output that is not the reference, since the
#     window cannot hold the facts the chain needs.
# Skips (prints SKIP, exits 0 like the other Python tests) when the weights are missing.
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.environ.get("LILSERVE_ROOT", os.getcwd())
HF_DIR = os.path.join(ROOT, "models", "lilchain", "hf")
LILCTL = os.environ.get("LILCTL") or os.path.join(
    os.environ.get("LILSERVE_BUILD", os.path.join(ROOT, "build")), "tools", "lilctl")
SEED, POOL, PICK = 2, 512, 4  # the held-out set and how many of its problems run here
BUDGET = 64
SINK_MAX_FACTOR = 2.5  # max_tokens of a problem: this times its reference length


def first_diff(a, b):
    """Index of the first character where a and b differ (len of the shorter if one is a prefix)."""
    n = min(len(a), len(b))
    return next((i for i in range(n) if a[i] != b[i]), n)


def describe_diff(got, want):
    i = first_diff(got, want)
    lo = max(0, i - 24)
    return (f"first difference at character {i} of {len(want)} (line {want.count(chr(10), 0, i) + 1}): "
            f"got ...{got[lo:i + 24]!r}, reference ...{want[lo:i + 24]!r}")


def pick_problems(data, tok):
    """The PICK held-out problems with the fewest links on the main chain (then fewest prompt
    lines): short outputs keep the test fast."""
    problems = data.problem_set(SEED, POOL)
    order = sorted(range(POOL), key=lambda i: (problems[i]["links"], problems[i]["lines"], i))
    picked = []
    for i in order[:PICK]:
        rec = data.eval_record(i, problems[i], SEED)
        ref_tokens = len(tok.encode(problems[i]["cot"], add_special_tokens=False).ids)
        rec["max_tokens"] = int(SINK_MAX_FACTOR * ref_tokens)
        picked.append((rec, ref_tokens))
    return picked


def run_eval(problem_file, out_dir, port):
    cmd = [LILCTL, "eval", problem_file, "--server", f"127.0.0.1:{port}", "--out", out_dir,
           "--sparse-modes", "dense,sink", "--budgets", str(BUDGET), "--sink-tokens", "16",
           "--monitor-modes", "off", "--temperature", "0", "-c", str(PICK), "--progress", "false"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def main():
    t0 = time.time()
    if not os.path.exists(os.path.join(HF_DIR, "model.safetensors")):
        print(f"SKIP: {HF_DIR}/model.safetensors is missing (the trained LilChain model)", flush=True)
        return
    # The harness reads the model path when imported; this test always serves LilChain on CPU.
    os.environ["LILSERVE_E2E_MODEL"] = HF_DIR
    os.environ["LILSERVE_DAEMON_FLAGS"] = ""
    sys.path.insert(0, os.path.join(ROOT, "models", "lilchain"))
    sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
    import lilchain_data as data
    from lilserve_harness import Daemon, check
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(os.path.join(HF_DIR, "tokenizer.json"))
    picked = pick_problems(data, tok)
    tmp = tempfile.mkdtemp(prefix="lilchain_model_")
    problem_file = os.path.join(tmp, "problems.jsonl")
    with open(problem_file, "w") as f:
        for rec, _ in picked:
            f.write(json.dumps(rec) + "\n")
    by_id = {rec["id"]: (rec, n) for rec, n in picked}
    print("problems: " + ", ".join(f"{rec['id']} ({rec['links']} links, {n} tokens)" for rec, n in picked),
          flush=True)

    with Daemon("--device", "cpu", "--max-running-seqs", str(PICK)) as d:
        d.wait_ready()
        out = os.path.join(tmp, "out")
        p = run_eval(problem_file, out, d.port)
        check(p.returncode == 0, f"lilctl eval failed ({p.returncode}):\n{p.stderr}\n{p.stdout}")
        with open(os.path.join(out, "requests.jsonl")) as f:
            requests = [json.loads(line) for line in f]
        rc = d.stop()
        check(rc == 0, f"lilserve exited with {rc}")

    cells = {"dense": [], "sink": []}
    for r in requests:
        cells[r["sparse_mode"]].append(r)
    for mode, rs in cells.items():
        check(sorted(r["id"] for r in rs) == sorted(by_id),
              f"{mode}: requests for {sorted(r['id'] for r in rs)}, expected {sorted(by_id)}")
        for r in rs:
            where = f"{mode} {r['id']}"
            check(r["ok"], f"{where}: request failed: {r.get('error')}")
            check(r["streamed_tokens"] == r["completion_tokens"],
                  f"{where}: {r['streamed_tokens']} tokens streamed, usage says {r['completion_tokens']}")

    # 1. Dense: the reference chain of thought, token for token.
    for r in cells["dense"]:
        rec, ref_tokens = by_id[r["id"]]
        where = f"dense {r['id']}"
        check(r["correct"], f"{where}: answer {r['extracted']!r}, expected {rec['answer']!r}; text {r['text']!r}")
        check(r["text"] == rec["reference_output"], f"{where}: output differs from the reference chain of "
              f"thought: {describe_diff(r['text'], rec['reference_output'])}")
        check(r["finish_reason"] == "STOP", f"{where}: finished with {r['finish_reason']}, expected STOP "
              f"(<|im_end|>) after the answer")
        # The reference tokens plus <|im_end|>, which counts as generated but adds no text.
        check(r["completion_tokens"] == ref_tokens + 1,
              f"{where}: {r['completion_tokens']} tokens, expected the {ref_tokens}-token reference + <|im_end|>")

    # 2. Sink + window at budget 64: facts fall out of the window.
    dense_ok = sum(r["correct"] for r in cells["dense"])
    sink_ok = sum(r["correct"] for r in cells["sink"])
    check(sink_ok <= dense_ok, f"sink {BUDGET} got {sink_ok} answers right, dense only {dense_ok}")
    differing = [r["id"] for r in cells["sink"] if r["text"] != by_id[r["id"]][0]["reference_output"]]
    check(differing, f"sink {BUDGET}: every output equals its reference; the 48-token window should "
          f"lose facts the chain needs")
    for r in sorted(cells["sink"], key=lambda r: r["id"]):
        ref = by_id[r["id"]][0]["reference_output"]
        state = "= reference" if r["text"] == ref else describe_diff(r["text"], ref)
        print(f"sink {r['id']}: {r['completion_tokens']} tokens, {r['finish_reason']}, "
              f"correct={r['correct']}; {state}", flush=True)
    mean = {m: statistics.mean(r["completion_tokens"] for r in rs) for m, rs in cells.items()}
    print(f"ok lilchain model: dense {dense_ok}/{PICK} right, every output = reference, "
          f"{mean['dense']:.1f} tokens mean; sink {BUDGET}: {sink_ok}/{PICK} right, "
          f"{len(differing)} differ from the reference, {mean['sink']:.1f} tokens mean; "
          f"{time.time() - t0:.1f} s", flush=True)
    print("PASS", flush=True)


if __name__ == "__main__":
    main()

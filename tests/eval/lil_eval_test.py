# File: tests/eval/lil_eval_test.py
# `lilctl eval` end to end: the real daemon on the default model, a tiny grid (3 problems,
# dense + sink at one budget, all four monitor modes), then every number of the report is
# recomputed from the streamed outputs (requests.jsonl) and a few requests are streamed again
# by an independent grpcio client, which must see the same text and token counts (greedy).
import csv
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from lilserve_harness import Daemon, check, fail, generate, pb, reason  # noqa: E402

LILCTL = os.environ.get("LILCTL") or os.path.join(
    os.environ.get("LILSERVE_BUILD", "build"), "tools", "lilctl")
ROOT = os.environ.get("LILSERVE_ROOT", os.getcwd())
MAX_TOKENS, INTERVAL, MIN_GAIN = 48, 16, 20
CONCLUSION = "\nAnswer:"

PROBLEMS = [
    {"id": "sum", "messages": [{"role": "user", "content": "What is 2 + 3? End with 'Answer: N'."}],
     "answer": "5"},
    # The 135M model repeats this word: a loop for the monitor to stop.
    {"id": "paris", "messages": [{"role": "user", "content": "Write the word Paris three times."}],
     "answer": "Paris", "answer_regex": "(Paris)"},
    {"id": "open", "prompt": "The history of the Roman Empire begins"},
]
SPARSE = {"dense": pb.DENSE, "sink": pb.SINK}
MONITOR = {"off": pb.OFF, "enforce": pb.ENFORCE, "shadow": pb.SHADOW, "conclude": pb.CONCLUDE}


def deflate_size(text):
    c = zlib.compressobj(6, zlib.DEFLATED, -15, 8)
    return len(c.compress(text.encode("utf-8")) + c.flush())


def run_eval(problem_file, out_dir, port, extra=()):
    cmd = [LILCTL, "eval", problem_file, "--server", f"127.0.0.1:{port}", "--out", out_dir,
           "--sparse-modes", "dense,sink", "--budgets", "64", "--monitor-modes",
           "off,enforce,shadow,conclude", "--max-tokens", str(MAX_TOKENS),
           "--monitor-interval-tokens", str(INTERVAL), "--monitor-min-gain-bytes", str(MIN_GAIN),
           "--conclusion-text", CONCLUSION, "--conclusion-max-tokens", "8", "-c", "3", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def check_request(r, problem):
    where = f"{r['cell']} {r['id']}"
    check(r["ok"], f"{where}: failed: {r.get('error')}")
    check(r["completion_tokens"] == r["streamed_tokens"],
          f"{where}: usage says {r['completion_tokens']} tokens, {r['streamed_tokens']} streamed")
    mode, fin, stop_at = r["monitor_mode"], r["finish_reason"], r["monitor_stop_at"]
    n = r["completion_tokens"]
    if mode in ("off", "shadow"):
        check(fin != "EARLY_STOP", f"{where}: EARLY_STOP with the monitor in {mode} mode")
    if mode == "off":
        check(stop_at == -1 and r["tokens_saved"] == 0 and not r["monitor_trace"],
              f"{where}: monitor off but stop_at {stop_at}, saved {r['tokens_saved']}")
    if mode == "enforce" and fin == "EARLY_STOP":
        check(stop_at == n and r["tokens_saved"] == MAX_TOKENS - n,
              f"{where}: early stop at {stop_at}, {n} tokens, saved {r['tokens_saved']}")
    if mode == "shadow":
        want = n - stop_at if stop_at >= 0 else 0
        check(r["tokens_saved"] == want, f"{where}: shadow saved {r['tokens_saved']}, expected {want}")
    if mode == "conclude" and fin == "EARLY_STOP":
        check(CONCLUSION in r["text"], f"{where}: conclude stop without the conclusion text")
    if fin == "LENGTH":
        check(n == MAX_TOKENS, f"{where}: LENGTH after {n} tokens, max_tokens {MAX_TOKENS}")
    for prev, cur in zip(r["monitor_trace"], r["monitor_trace"][1:]):
        check(cur[0] > prev[0] and cur[2] == cur[1] - prev[1], f"{where}: trace {r['monitor_trace']}")
    # The answer, extracted again here (Python re: the same last-match rule).
    if problem.get("answer") is None:
        check(not r["scored"] and r["extracted"] is None, f"{where}: an open prompt was scored")
    else:
        matches = list(re.finditer(problem.get("answer_regex", r"Answer:\s*(-?[0-9]+)"), r["text"]))
        got = None
        if matches:
            m = matches[-1]
            got = m.group(1) if m.re.groups else m.group(0)
        check(r["extracted"] == got, f"{where}: extracted {r['extracted']!r}, re finds {got!r}")
        check(r["correct"] == (got is not None and got.strip() == problem["answer"]),
              f"{where}: correct={r['correct']} with {got!r} vs {problem['answer']!r}")


def check_cells(rows, requests, problems):
    by_cell = {}
    for r in requests:
        by_cell.setdefault((r["sparse_mode"], r["budget_tokens"], r["monitor_mode"]), []).append(r)
    check(len(rows) == len(by_cell) == 8, f"{len(rows)} CSV rows, {len(by_cell)} cells in requests")
    off_mean = {}
    for (sparse, budget, mode), rs in by_cell.items():
        if mode == "off":
            off_mean[(sparse, budget)] = statistics.mean(r["completion_tokens"] for r in rs)
    for row in rows:
        key = (row["sparse_mode"], int(row["budget_tokens"]), row["monitor_mode"])
        rs = by_cell.get(key)
        check(rs is not None and len(rs) == len(problems), f"cell {key}: {rs and len(rs)} requests")
        tokens = [r["completion_tokens"] for r in rs]
        scored = [r for r in rs if r["scored"]]
        n = len(rs)
        expect = {
            "requests": n, "scored": len(scored), "correct": sum(r["correct"] for r in scored),
            "total_tokens": sum(tokens), "tokens_saved": sum(r["tokens_saved"] for r in rs),
            "errors": sum(not r["ok"] for r in rs),
            "accuracy": sum(r["correct"] for r in scored) / len(scored),
            "mean_tokens": statistics.mean(tokens), "median_tokens": statistics.median(tokens),
            "mean_tokens_saved": sum(r["tokens_saved"] for r in rs) / n,
            "early_stop_rate": sum(r["finish_reason"] == "EARLY_STOP" for r in rs) / n,
            "stall_rate": sum(r["monitor_stop_at"] >= 0 for r in rs) / n,
            "length_rate": sum(r["finish_reason"] == "LENGTH" for r in rs) / n,
            "mean_e2e_s": statistics.mean(r["e2e_s"] for r in rs),
            "reduction_vs_off": 1 - statistics.mean(tokens) / off_mean[key[:2]],
        }
        for k, v in expect.items():
            got = float(row[k])
            check(abs(got - v) <= 1e-3 * max(1.0, abs(v)), f"cell {key}: {k} is {row[k]} in cells.csv, "
                  f"{v} from requests.jsonl")
        if key[2] == "enforce":
            check(float(row["tokens_per_s"]) > 0 and float(row["wall_s"]) > 0, f"cell {key}: {row}")
    return by_cell


def check_curves(curves, requests):
    check(curves, "curves.json has no curve")
    by_key = {(r["cell"], r["id"]): r for r in requests}
    for c in curves:
        r = by_key[(c["cell"], c["id"])]
        pts = c["points"]
        check(all(b[0] > a[0] for a, b in zip(pts, pts[1:])), f"curve {c['cell']} {c['id']}: tokens not increasing")
        check(pts[-1][0] == r["completion_tokens"], f"curve ends at {pts[-1][0]}, {r['completion_tokens']} tokens")
        check(pts[-1][1] == deflate_size(r["text"]),
              f"curve {c['cell']} {c['id']}: last size {pts[-1][1]}, zlib says {deflate_size(r['text'])}")
        at = dict((p[0], p[1]) for p in pts)
        for t, size, _ in c["monitor_trace"]:
            if t in at:
                check(at[t] == size, f"curve {c['cell']} {c['id']}: {at[t]} bytes at {t}, the daemon's check says {size}")


def rerun_independently(d, requests, problems):
    """The dense and sink monitor-off requests, streamed again by grpcio: same outputs."""
    by_id = {p["id"]: p for p in problems}
    n = 0
    for r in requests:
        if r["monitor_mode"] != "off":
            continue
        p = by_id[r["id"]]
        fields = dict(sampling=pb.SamplingParams(temperature=0, seed=1),
                      stopping=pb.StoppingParams(max_tokens=MAX_TOKENS),
                      sparse=pb.SparseParams(mode=SPARSE[r["sparse_mode"]]),
                      monitor=pb.MonitorParams(mode=pb.OFF))
        if r["sparse_mode"] == "sink":
            fields["sparse"] = pb.SparseParams(mode=pb.SINK, sink_tokens=16, window_tokens=48)
        if "messages" in p:
            fields["messages"] = pb.Messages(messages=[pb.ChatMessage(**m) for m in p["messages"]])
        else:
            fields["prompt"] = p["prompt"]
        _, fin, text, ids = generate(d, timeout=300, **fields)
        check(text == r["text"] and len(ids) == r["completion_tokens"] and reason(fin) == r["finish_reason"],
              f"{r['cell']} {r['id']}: grpcio got {len(ids)} tokens {reason(fin)} {text!r}, lilctl eval "
              f"recorded {r['completion_tokens']} {r['finish_reason']} {r['text']!r}")
        n += 1
    return n


def test_bad_input(port, tmp, good_file):
    bad = os.path.join(tmp, "bad.jsonl")
    for body, needle in [('{"prompt": "x"}\n{"prompt": 5}\n', 'bad.jsonl:2: field "prompt" must be a string'),
                         ('{"prompt": "x", "answer": "1", "answer_regex": "(["}\n', "answer_regex: invalid"),
                         ('{"answer": "1"}\n', 'exactly one of "prompt" and "messages"')]:
        with open(bad, "w") as f:
            f.write(body)
        p = run_eval(bad, os.path.join(tmp, "bad_out"), port)
        check(p.returncode == 1 and needle in p.stderr, f"bad input {body!r}: rc {p.returncode}, {p.stderr!r}")
    p = subprocess.run([LILCTL, "eval", good_file, "--server", f"127.0.0.1:{port}", "--sparse-modes", "sink",
                        "--budgets", "8"], capture_output=True, text=True)
    check(p.returncode != 0 and "--budgets" in p.stderr, f"sink budget 8: rc {p.returncode} {p.stderr!r}")


def main():
    tmp = tempfile.mkdtemp(prefix="lil_eval_")
    problem_file = os.path.join(tmp, "problems.jsonl")
    with open(problem_file, "w") as f:
        for p in PROBLEMS:
            f.write(json.dumps(p) + "\n")
    d = Daemon("--max-running-seqs", "8")
    try:
        d.wait_ready()
        out = os.path.join(tmp, "out")
        try:
            import matplotlib  # noqa: F401
            plots = ["--plots", "--python", sys.executable,
                     "--plot-script", os.path.join(ROOT, "tools", "py", "lil_eval_plot.py")]
        except ImportError:
            plots = []
            print("note: matplotlib is missing; plots not checked", flush=True)
        p = run_eval(problem_file, out, d.port, plots)
        check(p.returncode == 0, f"lilctl eval failed ({p.returncode}):\n{p.stderr}\n{p.stdout}")
        with open(os.path.join(out, "requests.jsonl")) as f:
            requests = [json.loads(line) for line in f]
        with open(os.path.join(out, "cells.csv"), newline="") as f:
            rows = list(csv.DictReader(f))
        check(len(requests) == 8 * len(PROBLEMS), f"{len(requests)} requests recorded")
        by_id = {p["id"]: p for p in PROBLEMS}
        for r in requests:
            check_request(r, by_id[r["id"]])
        by_cell = check_cells(rows, requests, PROBLEMS)
        with open(os.path.join(out, "curves.json")) as f:
            check_curves(json.load(f)["curves"], requests)
        report = open(os.path.join(out, "report.md")).read()
        for row in rows:
            line = (f"| {row['sparse_mode']} | {row['budget_tokens'] if row['budget_tokens'] != '0' else '-'} | "
                    f"{row['monitor_mode']} | {row['requests']} | {float(row['accuracy']):.3f} | "
                    f"{float(row['mean_tokens']):.1f} |")
            check(line in report and line in p.stdout, f"report.md / stdout lack the row {line!r}")
        if plots:
            for name in ("accuracy_vs_budget.png", "tokens_vs_budget.png", "monitor_curves.png"):
                with open(os.path.join(out, name), "rb") as f:
                    check(f.read(8) == b"\x89PNG\r\n\x1a\n", f"{name} is not a PNG")
        stops = sum(r["finish_reason"] == "EARLY_STOP" for r in requests)
        stalls = sum(r["monitor_stop_at"] >= 0 for r in requests)
        check(stalls > 0, "the monitor never said stop: the grid does not exercise it")
        n = rerun_independently(d, requests, PROBLEMS)
        test_bad_input(d.port, tmp, problem_file)
        d.wait_idle()
        print(f"ok lil_eval: {len(requests)} requests in {len(by_cell)} cells, {stops} early stops, "
              f"{stalls} stalls, {n} re-streamed identically", flush=True)
    finally:
        rc = d.stop()
    check(rc == 0, f"lilserve exited with {rc}")
    print("PASS", flush=True)


if __name__ == "__main__":
    main()

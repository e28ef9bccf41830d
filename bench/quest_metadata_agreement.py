#!/usr/bin/env python3
# File: bench/quest_metadata_agreement.py
# How far Quest's e4m3 page metadata (LILSERVE_QUEST_FP8=1: min rounded down, max up, looser
# bounds) moves a real model's output, beside how far Quest itself moves it from dense.
# Starts the daemon (CPU by default) once per configuration, sends the 16 open prompts of
# tests/eval/open_prompts.jsonl through `lilctl generate` (chat, greedy, 256 tokens) and prints
# a Markdown table: for each pair of configurations, the continuations that are identical and
# the mean share of the shorter text the two agree on before they diverge.
#
#   .venv/bin/python bench/quest_metadata_agreement.py [--budgets 64,128] [--device cpu]
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def generate_all(build, port, mode, budget, prompts, max_tokens):
    out = {}
    for pid, prompt in prompts:
        cmd = [f"{build}/tools/lilctl", "generate", "--server", f"localhost:{port}", "--chat", "--prompt", prompt,
               "--max-tokens", str(max_tokens), "--sparse-mode", mode]
        if mode != "dense":
            cmd += ["--sparse-budget-tokens", str(budget)]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=True)
        out[pid] = r.stdout
    return out


def run_config(build, device, port, fp8, mode, budget, prompts, max_tokens):
    env = dict(os.environ)
    env.pop("LILSERVE_QUEST_FP8", None)
    if fp8:
        env["LILSERVE_QUEST_FP8"] = "1"
    server = subprocess.Popen([f"{build}/server/lilserve", "--device", device, "--port", str(port), "--metrics-port", "-1"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    try:
        for _ in range(120):
            ok = subprocess.run([f"{build}/tools/lilctl", "health", "--server", f"localhost:{port}"],
                                capture_output=True).returncode == 0
            if ok:
                break
            time.sleep(1)
        else:
            sys.exit(f"daemon on port {port} did not become ready")
        return generate_all(build, port, mode, budget, prompts, max_tokens)
    finally:
        server.terminate()
        server.wait(timeout=60)


def agreement(a, b):
    identical, shares = 0, []
    for k in a:
        x, y = a[k], b[k]
        identical += x == y
        n = 0
        while n < min(len(x), len(y)) and x[n] == y[n]:
            n += 1
        shares.append(n / max(1, min(len(x), len(y))))
    return identical, sum(shares) / len(shares)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--budgets", default="64,128")
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--port", type=int, default=50171)
    args = ap.parse_args()
    prompts = []
    with open(os.path.join(ROOT, "tests/eval/open_prompts.jsonl")) as f:
        for line in f:
            j = json.loads(line)
            prompts.append((j["id"], j["messages"][0]["content"]))
    port = args.port
    runs = {"dense": run_config(args.build, args.device, port, False, "dense", 0, prompts, args.max_tokens)}
    budgets = [int(b) for b in args.budgets.split(",")]
    for b in budgets:
        for fp8 in (False, True):
            port += 1
            runs[(b, fp8)] = run_config(args.build, args.device, port, fp8, "quest", b, prompts, args.max_tokens)
    print(f"## Quest page metadata: bf16 / f32 against e4m3 rounded outward ({len(prompts)} prompts, "
          f"{args.max_tokens} tokens, greedy, {args.device})\n")
    print("| budget | pair | identical continuations | mean shared prefix |\n|---|---|---|---|")
    for b in budgets:
        for name, x, y in ((f"Quest vs Quest e4m3", runs[(b, False)], runs[(b, True)]),
                           ("dense vs Quest", runs["dense"], runs[(b, False)]),
                           ("dense vs Quest e4m3", runs["dense"], runs[(b, True)])):
            same, share = agreement(x, y)
            print(f"| {b} | {name} | {same} of {len(prompts)} | {100 * share:.1f}% |")


if __name__ == "__main__":
    main()

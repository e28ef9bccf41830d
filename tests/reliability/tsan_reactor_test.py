# File: tests/reliability/tsan_reactor_test.py
# The Generate reactors under ThreadSanitizer (tools/sanitize.sh tsan; docs/RELIABILITY.md):
# a daemon built with -DLILSERVE_TSAN=ON serves a small concurrent load that walks every path
# of server/generate_reactor.cc across its threads (engine thread notifier -> Pump ->
# StartWrite, gRPC's OnWriteDone / OnCancel / OnDone): streams read at once, a slow reader
# (writes in flight while tokens queue), client cancels mid-stream, gRPC deadlines, Control.Abort
# and Tokenize. Any TSan report makes the daemon exit non-zero (exitcode 66) and fails the run;
# with --expect-race (LILSERVE_TSAN_PLANTED_RACE set for the daemon) it passes only if TSan
# reported the race planted in the reactor, so the check above is known to be able to fail.
# Load is kept small: the model under TSan runs ~20x slower than in the plain build.
import argparse
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from lilserve_harness import Daemon, check, grpc, pb  # noqa: E402

PROMPTS = ["In the beginning", "The quick brown fox", "Once upon a time there was",
           "The capital of France", "Numbers: 1, 2, 3,"]


def req(i, max_tokens, **sampling):
    return pb.GenerateRequest(request_id=f"tsan-{i}", prompt=PROMPTS[i % len(PROMPTS)],
                              sampling=pb.SamplingParams(temperature=0, **sampling),
                              stopping=pb.StoppingParams(max_tokens=max_tokens, ignore_eos=True))


def one(d, i, kind, results):
    ids, fin = [], None
    try:
        call = d.inference.Generate(req(i, 24, logprobs=5 if kind == "slow" else 0),
                                    timeout=2 if kind == "deadline" else 900)
        for r in call:
            if kind == "slow":
                time.sleep(0.3)
            if r.WhichOneof("kind") == "chunk":
                ids += list(r.chunk.token_ids)
                if kind == "cancel" and len(ids) >= 3:
                    call.cancel()
                if kind == "abort" and len(ids) >= 3:
                    d.control.Abort(pb.AbortRequest(request_id=f"tsan-{i}"), timeout=60)
            else:
                check(fin is None, f"stream {i}: two finished messages")
                fin = r.finished
        results[i] = (kind, len(ids), pb.FinishReason.Name(fin.reason) if fin else None)
    except grpc.RpcError as e:
        results[i] = (kind, len(ids), e.code().name)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--expect-race", action="store_true",
                    help="pass only if TSan reports the race planted in the reactor")
    args = ap.parse_args()
    env_flag = "LILSERVE_TSAN_PLANTED_RACE"
    if args.expect_race:
        os.environ[env_flag] = "1"
    else:
        os.environ.pop(env_flag, None)
    check("halt_on_error=1" not in os.environ.get("TSAN_OPTIONS", ""),
          "run with TSAN_OPTIONS halt_on_error=0: the daemon must drain to show every report")
    t0 = time.time()
    d = Daemon("--kv-mib", "32", "--max-running-seqs", "16")
    with d:
        d.wait_ready(timeout=600)
        kinds = ["fast", "fast", "fast", "slow", "slow", "cancel", "cancel", "abort", "deadline", "fast"]
        results = [None] * len(kinds)
        threads = [threading.Thread(target=one, args=(d, i, k, results)) for i, k in enumerate(kinds)]
        for t in threads:
            t.start()
        tok = d.inference.Tokenize(pb.TokenizeRequest(text="hello world"), timeout=300)
        check(len(tok.token_ids) > 0, "Tokenize returned no ids")
        for t in threads:
            t.join(900)
        for i, r in enumerate(results):
            check(r is not None, f"stream {i} did not end")
            kind, n, end = r
            if kind in ("fast", "slow"):
                check(end == "LENGTH" and n == 24, f"stream {i} ({kind}): {n} tokens, {end}")
        d.wait_idle(120)
        code = d.stop(timeout=300)
    log = open(d.log.name, errors="replace").read()
    races = log.count("WARNING: ThreadSanitizer")
    planted = "planted_race_counter" in log  # the race's location, named in the report
    print(f"streams: {results}")
    print(f"daemon exit {code}, {races} TSan reports (planted race reported: {planted}) in {time.time() - t0:.0f}s")
    if args.expect_race:
        check(races > 0 and planted and code != 0, "the planted race in the reactor was not reported")
        print("PASS tsan_reactor_test --expect-race: TSan reported the planted race")
    else:
        if races:
            i = log.index("WARNING: ThreadSanitizer")
            print(log[max(0, i - 200):i + 6000])
        check(races == 0 and code == 0, f"TSan reports in the daemon ({races}), exit {code}")
        print("PASS tsan_reactor_test: no TSan report")


if __name__ == "__main__":
    main()

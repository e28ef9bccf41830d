# File: tests/reliability/faults_test.py
# Fault injection against the real daemon (CPU, default model, loopback):
#   - KV exhaustion: a pool of a few pages and many concurrent requests that each fit: they
#     preempt and recompute, none fails, each equals its alone run;
#   - a request larger than the whole KV pool: INVALID_ARGUMENT naming the KV pages; one whose
#     generation outgrows the pool ends LENGTH and frees its pages;
#   - a client process killed mid-stream: the request is cancelled, pages come back;
#   - a slow client (reads one message every 0.2 s, large messages): other streams finish on
#     time with their alone tokens, the slow one gets every token, memory stays bounded;
#   - SIGTERM under load with a grace period: every running request finishes normally (nothing
#     lost), new calls get UNAVAILABLE, exit 0;
#   - a model file truncated or changed on disk: the daemon exits 1 at start with an error
#     naming the file, never a crash.
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from lilserve_harness import LILSERVE, MODEL, Daemon, check, fail, free_port, grpc, pb, rpc  # noqa: E402
from soak_test import metric_sum, rss_kib  # noqa: E402

PROMPTS = ["In the beginning God created the heaven and the earth. And the earth was without form",
           "The quick brown fox jumps over the lazy dog while the farmer watches from his porch",
           "Once upon a time there was a little girl who lived in a village near the forest",
           "Numbers: 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17",
           "The capital of France is Paris, and the capital of Germany is Berlin; the capital of"]


def greedy(prompt, max_tokens, rid="", **extra):
    return pb.GenerateRequest(request_id=rid, prompt=prompt, sampling=pb.SamplingParams(temperature=0, **extra),
                              stopping=pb.StoppingParams(max_tokens=max_tokens, ignore_eos=True))


def run(d, req, timeout=300):
    ids, fin = [], None
    for r in d.inference.Generate(req, timeout=timeout):
        if r.WhichOneof("kind") == "chunk":
            ids += list(r.chunk.token_ids)
        elif r.WhichOneof("kind") == "finished":
            check(fin is None, "two finished messages")
            fin = r.finished
    check(fin is not None, "no finished message")
    return ids, fin


def run_concurrently(d, reqs):
    results = [None] * len(reqs)

    def one(i):
        try:
            results[i] = run(d, reqs[i])
        except grpc.RpcError as e:
            results[i] = e
    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(reqs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    return results


def preemptions(d):
    return metric_sum(d.http("/metrics")[1], "lilserve_preemptions_total")


def test_kv_exhaustion(d, refs):
    before = preemptions(d)
    reqs = [greedy(PROMPTS[i % len(PROMPTS)], 24) for i in range(24)]
    results = run_concurrently(d, reqs)
    for i, r in enumerate(results):
        check(not isinstance(r, Exception), f"request {i} failed under KV exhaustion: {r}")
        ids, fin = r
        check(fin.reason == pb.LENGTH and ids == refs[i % len(PROMPTS)],
              f"request {i}: {pb.FinishReason.Name(fin.reason)} {ids} vs alone {refs[i % len(PROMPTS)]}")
    n = preemptions(d) - before
    check(n > 0, "24 requests on a small pool caused no preemption")
    info = d.wait_idle()
    check(info.pages_used == 0, f"pages leaked: {info}")
    print(f"ok KV exhaustion: 24/24 requests equal their alone runs after {n:.0f} preemptions "
          f"({info.pages_total} pages)", flush=True)


def test_larger_than_kv(d):
    info = d.info()
    tokens = info.pages_total * info.page_size + 1
    try:
        run(d, pb.GenerateRequest(token_ids=pb.TokenIds(ids=[100] * tokens),
                                  stopping=pb.StoppingParams(max_tokens=1)))
        fail("a prompt larger than the whole KV pool was accepted")
    except grpc.RpcError as e:
        check(e.code() == grpc.StatusCode.INVALID_ARGUMENT and "KV pages" in e.details() and
              str(info.pages_total) in e.details(), f"too big: {e.code()} {e.details()!r}")
        msg = e.details()
    # Fits as a prompt, but its generation outgrows the pool: ends LENGTH at the pool's size.
    ids, fin = run(d, pb.GenerateRequest(token_ids=pb.TokenIds(ids=[100] * (tokens - 2 * info.page_size)),
                                         stopping=pb.StoppingParams(max_tokens=1000, ignore_eos=True)))
    check(fin.reason == pb.LENGTH and 0 < len(ids) < 1000, f"outgrowing the pool: {fin}")
    check(d.wait_idle().pages_used == 0, "pages leaked")
    print(f"ok larger than the KV pool: INVALID_ARGUMENT {msg!r}; outgrowing it ends LENGTH after "
          f"{len(ids)} tokens", flush=True)


CLIENT = r"""
import sys
sys.path.insert(0, sys.argv[1])
from lilserve_harness import grpc, pb, rpc
stub = rpc.InferenceStub(grpc.insecure_channel(sys.argv[2]))
for r in stub.Generate(pb.GenerateRequest(request_id="vanish", prompt="Tell me a long story",
                       stopping=pb.StoppingParams(max_tokens=2000, ignore_eos=True))):
    print("chunk", flush=True)
"""


def test_client_vanishes(d):
    text = d.http("/metrics")[1]
    cancelled = metric_sum(text, 'lilserve_requests_total{finish_reason="cancelled"}')
    e2e = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e")
    p = subprocess.Popen([sys.executable, "-c", CLIENT, e2e, f"127.0.0.1:{d.port}"],
                         stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    check(line.startswith("chunk"), f"vanishing client got {line!r}")
    check(d.info().pages_used > 0, "no pages used while the client streams")
    p.kill()
    p.wait()
    info = d.wait_idle(30)
    check(info.pages_used == 0, f"pages leaked: {info}")
    end = time.time() + 10
    while time.time() < end:
        now = metric_sum(d.http("/metrics")[1], 'lilserve_requests_total{finish_reason="cancelled"}')
        if now == cancelled + 1:
            break
        time.sleep(0.1)
    check(now == cancelled + 1, f"cancelled count {cancelled} -> {now}")
    print("ok client killed mid-stream: cancelled once, pages back", flush=True)


def read_all(stream):
    ids, text, fin, msgs = [], "", None, 0
    for r in stream:
        msgs += 1
        if r.WhichOneof("kind") == "chunk":
            ids += list(r.chunk.token_ids)
            text += r.chunk.text
        else:
            fin = r.finished
    return ids, text, fin, msgs


def test_slow_client(d, refs):
    # Alone: the normal requests' time without a slow client.
    t = time.time()
    run_concurrently(d, [greedy(PROMPTS[i], 24) for i in range(len(PROMPTS))])
    alone_s = time.time() - t
    slow_req = greedy(PROMPTS[0], 250, rid="slow", logprobs=20)
    ref_ids, ref_text, _, ref_msgs = read_all(d.inference.Generate(slow_req, timeout=600))
    rss0 = rss_kib(d.proc.pid)
    # The slow stream's own channel without BDP probing keeps gRPC's flow-control window at
    # 64 KiB, so the daemon's writes stall and its outbox (server/generate_reactor.h) fills.
    ch = grpc.insecure_channel(f"127.0.0.1:{d.port}", options=[("grpc.http2.bdp_probe", 0)])
    slow = rpc.InferenceStub(ch).Generate(slow_req, timeout=600)
    first = next(slow)
    check(first.WhichOneof("kind") == "chunk", "slow stream started without a chunk")
    t = time.time()
    results = run_concurrently(d, [greedy(PROMPTS[i], 24) for i in range(len(PROMPTS))])
    busy_s = time.time() - t
    for i, r in enumerate(results):
        check(not isinstance(r, Exception) and r[1].reason == pb.LENGTH and r[0] == refs[i],
              f"request {i} beside a slow client: {r}")
    ids, text, fin, msgs = list(first.chunk.token_ids), first.chunk.text, None, 1
    for r in slow:
        msgs += 1
        time.sleep(0.2 if fin is None and msgs < 60 else 0)
        if r.WhichOneof("kind") == "chunk":
            check(len(r.chunk.logprobs) == len(r.chunk.token_ids), "logprobs missing")
            ids += list(r.chunk.token_ids)
            text += r.chunk.text
        else:
            fin = r.finished
    ch.close()
    check(fin is not None and fin.reason == pb.LENGTH and len(ids) == 250, f"slow stream: {len(ids)} {fin}")
    # Coalesced chunks carry every token and all of the text, in order.
    check(ids == ref_ids and text == ref_text,
          f"slow stream differs from the same request read at once: {ids} {text!r} vs {ref_ids} {ref_text!r}")
    growth = (rss_kib(d.proc.pid) - rss0) / 1024
    check(growth < 64, f"RSS grew {growth:.1f} MiB with one slow client")
    d.wait_idle()
    # Beside a slow client the others must not wait for it (they would hang until it reads), and their time is held
    # to 3x their time alone: measured before and again now, the larger taken, so a machine that got busier meanwhile
    # (other tests running in parallel) does not fail the check.
    t = time.time()
    run_concurrently(d, [greedy(PROMPTS[i], 24) for i in range(len(PROMPTS))])
    alone_s = max(alone_s, time.time() - t)
    check(busy_s < 3 * alone_s + 5, f"other streams took {busy_s:.1f}s beside a slow client, {alone_s:.1f}s alone")
    print(f"ok slow client: others {busy_s:.1f}s (alone {alone_s:.1f}s), slow stream got 250 tokens "
          f"in {msgs} messages ({ref_msgs} read at once), text equal, RSS +{growth:.1f} MiB", flush=True)


def test_sigterm_under_load(refs):
    d = Daemon("--kv-mib", "16", "--max-running-seqs", "8", "--drain-grace-s", "120")
    with d:
        d.wait_ready()
        reqs = [greedy(PROMPTS[i % len(PROMPTS)], 16) for i in range(24)]
        results = [None] * len(reqs)
        started = threading.Event()

        def one(i):
            try:
                ids, fin = [], None
                for r in d.inference.Generate(reqs[i], timeout=300):
                    if r.WhichOneof("kind") == "chunk":
                        ids += list(r.chunk.token_ids)
                        started.set()
                    else:
                        fin = r.finished
                results[i] = (ids, fin)
            except grpc.RpcError as e:
                results[i] = e
        threads = [threading.Thread(target=one, args=(i,)) for i in range(len(reqs))]
        for t in threads:
            t.start()
        check(started.wait(120), "no request started")
        time.sleep(0.2)
        d.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        try:
            run(d, greedy("x", 1))
            fail("a new call was accepted while draining")
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.UNAVAILABLE, f"new call while draining: {e.code()}")
        for t in threads:
            t.join(300)
        rc = d.proc.wait(120)
        for i, r in enumerate(results):
            check(not isinstance(r, Exception) and r[1] is not None and r[1].reason == pb.LENGTH and
                  r[0] == refs[i % len(PROMPTS)], f"request {i} across SIGTERM: {r}")
        check(rc == 0, f"exit {rc} after SIGTERM")
    print("ok SIGTERM under load: 24/24 in-flight requests finished with their alone tokens, "
          "new calls UNAVAILABLE, exit 0", flush=True)


def start_fails(model_path, expect):
    port = free_port()
    p = subprocess.run([LILSERVE, "--model", model_path, "--host", "127.0.0.1", "--port", str(port),
                        "--metrics-port", str(free_port())], capture_output=True, text=True, timeout=120)
    out = p.stdout + p.stderr
    check(p.returncode == 1, f"{expect}: exit {p.returncode} (a signal is negative):\n{out[-2000:]}")
    check(model_path in out and expect in out, f"error does not name {model_path} / {expect!r}:\n{out[-2000:]}")
    line = [x for x in out.splitlines() if model_path in x][-1]
    return line


def test_broken_model_files():
    import gguf
    tmp = tempfile.mkdtemp(prefix="lilserve_badmodel_")
    try:
        size = os.path.getsize(MODEL)
        with open(MODEL, "rb") as f:
            head = f.read(1 << 20)
        cases = []
        p = os.path.join(tmp, "header-cut.gguf")
        with open(p, "wb") as f:
            f.write(head[:4096])  # inside the metadata (token list)
        cases.append((p, "exceeds the file"))
        p = os.path.join(tmp, "bad-magic.gguf")
        with open(p, "wb") as f:
            f.write(b"GGXF" + head[4:])
        cases.append((p, "bad magic"))
        p = os.path.join(tmp, "data-cut.gguf")
        with open(MODEL, "rb") as src, open(p, "wb") as dst:
            dst.write(src.read(size * 2 // 3))  # inside the tensor data
        cases.append((p, "runs past the end"))
        p = os.path.join(tmp, "changed-layers.gguf")
        shutil.copy(MODEL, p)
        r = gguf.GGUFReader(p, "r+")
        field = r.fields["llama.block_count"]
        field.parts[field.data[0]][0] = 31  # one more layer than the file has tensors for
        del r
        cases.append((p, "blk.30"))
        cases.append((os.path.join(tmp, "missing.gguf"), "No such file"))
        for path, expect in cases:
            line = start_fails(path, expect)
            print(f"ok broken model {os.path.basename(path)}: exit 1, {line.strip()[:160]!r}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    t0 = time.time()
    test_broken_model_files()
    d = Daemon("--kv-mib", "24", "--max-running-seqs", "32", "--max-model-len", "2048")
    with d:
        d.wait_ready()
        refs = [run(d, greedy(p, 24))[0] for p in PROMPTS]
        test_kv_exhaustion(d, refs)
        test_larger_than_kv(d)
        test_client_vanishes(d)
        test_slow_client(d, [r[:24] for r in refs])
        check(d.health_status() == "SERVING", "not SERVING after the faults")
        check(d.stop() == 0, "lilserve did not exit 0 on SIGTERM")
    test_sigterm_under_load([r[:16] for r in refs])
    print(f"PASS faults_test in {time.time() - t0:.1f}s", flush=True)


if __name__ == "__main__":
    main()

# File: tests/openai/openai_api_test.py
# The OpenAI-compatible HTTP API of the real lilserve daemon on the default model, driven by
# the official `openai` Python client (PyPI), beside the independent grpcio client of
# tests/e2e: completions and chat, streaming and not, stop strings, a monitor early stop with
# its finish reason and usage, deadlines, logprobs, invalid parameters (400 naming the field),
# a disconnect mid-stream freeing the request, Control.Abort of an HTTP request, metrics that
# count HTTP requests exactly as gRPC ones, then HTTPS + bearer token (401), queue full (429),
# loading and draining (503).
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from lilserve_harness import Daemon, check, fail, free_port, generate, pb, reason  # noqa: E402

import openai  # noqa: E402

try:  # the openai client's HTTP stack: httpx2 in openai 3.x, httpx before
    import httpx2 as httpx
except ImportError:
    import httpx

MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"
PROMPT = "The history of the Roman Empire begins"
SAY_OK = [{"role": "user", "content": "Say OK."}]


def start(*extra, tls_root=None):
    http_port = free_port()
    d = Daemon("--http-port", str(http_port), *extra, tls_root=tls_root)
    d.http_port = http_port
    return d


def client(d, scheme="http", key="unused", verify=True, timeout=60):
    # trust_env=False: a proxy from the environment must not sit between us and the daemon.
    http = httpx.Client(trust_env=False, verify=verify, timeout=timeout)
    return openai.OpenAI(base_url=f"{scheme}://127.0.0.1:{d.http_port}/v1", api_key=key,
                         max_retries=0, http_client=http)


def metrics(d):
    status, text = d.http("/metrics")
    check(status == 200, f"/metrics: {status}")
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def delta(before, after, name):
    return after.get(name, 0.0) - before.get(name, 0.0)


def finished(name):
    return f'lilserve_requests_total{{finish_reason="{name}"}}'


def rejected(code):
    return f'lilserve_requests_rejected_total{{code="{code}"}}'


def raw_post(d, path, body, headers=None):
    """POST without the openai client (bodies it would not send); returns (status, json)."""
    with httpx.Client(trust_env=False, timeout=30) as h:
        r = h.post(f"http://127.0.0.1:{d.http_port}{path}", content=body, headers=headers or {})
        try:
            return r.status_code, r.json()
        except ValueError:
            return r.status_code, r.text


def stream_text(stream):
    """Reads a completions or chat stream: (text, finish chunk's choice, usage, n chunks, first)."""
    text, last_choice, usage, n, first = "", None, None, 0, None
    for chunk in stream:
        n += 1
        if first is None:
            first = chunk
        if chunk.usage is not None:
            usage = chunk.usage
        for c in chunk.choices:
            piece = c.text if hasattr(c, "text") else (c.delta.content or "")
            text += piece
            if c.finish_reason is not None:
                check(last_choice is None, f"two chunks with a finish_reason: {chunk}")
                last_choice = c
    check(last_choice is not None, "the stream had no chunk with a finish_reason")
    return text, last_choice, usage, n, first


def test_models(c):
    ids = [m.id for m in c.models.list().data]
    check(ids == [MODEL], f"/v1/models lists {ids}")
    check(c.models.retrieve(MODEL).id == MODEL, "retrieve the served model")
    try:
        c.models.retrieve("gpt-4")
        fail("an unknown model was found")
    except openai.NotFoundError as e:
        check(e.status_code == 404, f"unknown model: {e}")
    print("ok /v1/models", flush=True)


def test_completions(d, c):
    _, fin, grpc_text, grpc_ids = generate(d, prompt=PROMPT, sampling=pb.SamplingParams(temperature=0),
                                           stopping=pb.StoppingParams(max_tokens=12, ignore_eos=True))
    r = c.completions.create(model=MODEL, prompt=PROMPT, max_tokens=12, temperature=0,
                             extra_body={"ignore_eos": True})
    ch = r.choices[0]
    check(ch.finish_reason == "length" and r.usage.completion_tokens == 12 and
          r.usage.prompt_tokens == fin.usage.prompt_tokens and
          r.usage.total_tokens == r.usage.prompt_tokens + 12 and r.usage.tokens_saved == 0,
          f"completion: {ch.finish_reason} {r.usage} vs gRPC {fin.usage}")
    check(ch.text == grpc_text, f"HTTP greedy text {ch.text!r} != gRPC greedy text {grpc_text!r}")
    check(r.object == "text_completion" and r.id.startswith("cmpl-") and r.model == MODEL, f"{r}")
    # Streaming: the same text in several chunks, then the usage chunk.
    text, last, usage, n, _ = stream_text(c.completions.create(
        model=MODEL, prompt=PROMPT, max_tokens=12, temperature=0, stream=True,
        stream_options={"include_usage": True}, extra_body={"ignore_eos": True}))
    check(text == grpc_text and last.finish_reason == "length" and n >= 4 and
          usage is not None and usage.completion_tokens == 12,
          f"stream: {text!r} {last.finish_reason} {n} chunks, usage {usage}")
    # Token ids as the prompt (and the ids back with return_token_ids).
    prompt_ids = list(d.inference.Tokenize(pb.TokenizeRequest(text=PROMPT, add_special_tokens=True)).token_ids)
    r = c.completions.create(model=MODEL, prompt=prompt_ids, max_tokens=12, temperature=0,
                             extra_body={"ignore_eos": True, "return_token_ids": True})
    check(r.choices[0].text == grpc_text and r.choices[0].token_ids == grpc_ids,
          f"token-id prompt: {r.choices[0]}")
    print(f"ok completions (JSON, SSE, token ids) = gRPC greedy text {grpc_text!r}", flush=True)
    return grpc_text


def test_chat(d, c):
    _, fin, grpc_text, _ = generate(d, messages=pb.Messages(messages=[pb.ChatMessage(role="user", content="Say OK.")]),
                                    sampling=pb.SamplingParams(temperature=0), stopping=pb.StoppingParams(max_tokens=48))
    r = c.chat.completions.create(model=MODEL, messages=SAY_OK, max_completion_tokens=48, temperature=0)
    ch = r.choices[0]
    check(ch.finish_reason == "stop" and ch.message.role == "assistant" and ch.message.content == grpc_text and
          r.usage.prompt_tokens == fin.usage.prompt_tokens and r.object == "chat.completion",
          f"chat: {ch} {r.usage} vs gRPC {grpc_text!r} {fin.usage}")
    text, last, usage, n, first = stream_text(c.chat.completions.create(
        model=MODEL, messages=SAY_OK, max_tokens=48, temperature=0, stream=True))
    check(first.choices[0].delta.role == "assistant" and text == grpc_text and last.finish_reason == "stop"
          and usage is None and n >= 3, f"chat stream: {text!r} {last} {n} chunks")
    print(f"ok chat (JSON, SSE; EOS -> stop) = gRPC {grpc_text!r}", flush=True)


def test_stop_strings(c, greedy):
    words = greedy.split()
    stop = words[len(words) // 2]
    r = c.completions.create(model=MODEL, prompt=PROMPT, max_tokens=12, temperature=0, stop=[stop, "zzqx"],
                             extra_body={"ignore_eos": True})
    ch = r.choices[0]
    check(ch.finish_reason == "stop" and stop not in ch.text and greedy.startswith(ch.text) and
          ch.stop_reason == stop and r.lilserve["finish_reason"] == "stop_sequence",
          f"stop {stop!r}: {ch} {r.lilserve}")
    text, last, _, _, _ = stream_text(c.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": PROMPT}], max_tokens=24, temperature=0,
        stop=" ", stream=True))
    check(last.finish_reason == "stop" and " " not in text, f"chat stop ' ': {text!r} {last}")
    print(f"ok stop strings ({stop!r} -> finish stop, text cut before it)", flush=True)


def test_monitor_and_deadline(c):
    monitor = {"mode": "enforce", "interval_tokens": 16, "min_gain_bytes": 1000000}
    r = c.completions.create(model=MODEL, prompt=PROMPT, max_tokens=80,
                             extra_body={"ignore_eos": True, "monitor": monitor})
    u = r.usage
    check(r.choices[0].finish_reason == "early_stop" and 0 < u.completion_tokens < 80 and
          u.tokens_saved == 80 - u.completion_tokens and r.lilserve["monitor_stop_at"] == u.completion_tokens
          and len(r.lilserve["monitor_trace"]) >= 1,
          f"monitor enforce: {r.choices[0].finish_reason} {u} {r.lilserve}")
    text, last, usage, _, _ = stream_text(c.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": PROMPT}], max_completion_tokens=80, stream=True,
        stream_options={"include_usage": True}, extra_body={"ignore_eos": True, "monitor": monitor}))
    check(last.finish_reason == "early_stop" and usage.tokens_saved == 80 - usage.completion_tokens > 0,
          f"monitor enforce, chat stream: {last} {usage}")
    r = c.completions.create(model=MODEL, prompt=PROMPT, max_tokens=2000,
                             extra_body={"ignore_eos": True, "time_limit_ms": 300})
    check(r.choices[0].finish_reason == "deadline" and r.usage.completion_tokens < 2000,
          f"time_limit_ms: {r.choices[0].finish_reason} {r.usage}")
    print(f"ok monitor early stop (finish early_stop, {u.completion_tokens} generated, "
          f"{u.tokens_saved} saved), deadline (finish deadline)", flush=True)


def test_logprobs_and_seed(c):
    r = c.completions.create(model=MODEL, prompt=PROMPT, max_tokens=4, temperature=0, logprobs=2,
                             extra_body={"ignore_eos": True})
    lp = r.choices[0].logprobs
    check(len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == 4 and
          all(len(t) == 2 and max(t.values()) == x for t, x in zip(lp.top_logprobs, lp.token_logprobs)) and
          "".join(lp.tokens) == r.choices[0].text, f"completion logprobs: {lp}")
    r = c.chat.completions.create(model=MODEL, messages=SAY_OK, max_tokens=4, temperature=0, logprobs=True,
                                  top_logprobs=3)
    content = r.choices[0].logprobs.content
    check(len(content) == r.usage.completion_tokens and all(len(t.top_logprobs) == 3 for t in content) and
          all(t.logprob <= 0 and bytes(t.bytes).decode() == t.token for t in content), f"chat logprobs: {content}")
    a = [c.completions.create(model=MODEL, prompt=PROMPT, max_tokens=8, temperature=1.0, seed=7).choices[0].text
         for _ in range(2)]
    check(a[0] == a[1], f"same seed, different text: {a}")
    print("ok logprobs (completions and chat), seed", flush=True)


def expect_400(call, param, **kw):
    try:
        call(**kw)
    except openai.BadRequestError as e:
        check(e.status_code == 400 and e.param == param and param.split("[")[0].split(".")[-1] in e.message,
              f"{kw}: 400 param {e.param!r} message {e.message!r}, wanted param {param!r}")
        return
    fail(f"{kw} was accepted")


def test_invalid(d, c):
    before = metrics(d)
    comp, chat = c.completions.create, c.chat.completions.create
    base = {"model": MODEL, "prompt": "x"}
    chat_base = {"model": MODEL, "messages": SAY_OK}
    cases = [
        (comp, "top_p", dict(base, top_p=1.5)),
        (comp, "temperature", dict(base, temperature=-1)),
        (comp, "max_tokens", dict(base, max_tokens=0)),
        (chat, "max_completion_tokens", dict(chat_base, max_completion_tokens=100000)),
        (comp, "n", dict(base, n=2)),
        (chat, "n", dict(chat_base, n=3)),
        (comp, "stop", dict(base, extra_body={"stop": ["s"] * 17})),
        (comp, "logprobs", dict(base, logprobs=50)),
        (chat, "top_logprobs", dict(chat_base, top_logprobs=2)),
        (comp, "monitor.interval_tokens", dict(base, extra_body={"monitor": {"mode": "enforce", "interval_tokens": 1}})),
        (comp, "monitor.mode", dict(base, extra_body={"monitor": {"mode": "sometimes"}})),
        (comp, "sparse.mode", dict(base, extra_body={"sparse": {"mode": "dense-ish"}})),
        (comp, "max_token", dict(base, extra_body={"max_token": 5})),
        (comp, "temperature", dict(base, extra_body={"temperature": "hot"})),
        (chat, "messages", dict(chat_base, messages=[])),
        (comp, "prompt", dict(base, prompt="hello " * 10000)),  # 10000 tokens > max_model_len 8192
        (comp, "prompt", dict(base, prompt=[[1, 2], [3]])),   # a batch
        (comp, "frequency_penalty", dict(base, frequency_penalty=0.5)),
        (chat, "tools", dict(chat_base, tools=[{"type": "function", "function": {"name": "f"}}])),
    ]
    for call, param, kw in cases:
        expect_400(call, param, **kw)
    # Not JSON at all, and an unknown route: still OpenAI's error shape.
    status, body = raw_post(d, "/v1/completions", b"{not json", {"Content-Type": "application/json"})
    check(status == 400 and "not valid JSON" in body["error"]["message"], f"bad JSON: {status} {body}")
    status, body = raw_post(d, "/v1/embeddings", b"{}")
    check(status == 404 and body["error"]["message"].startswith("no route"), f"unknown route: {status} {body}")
    try:
        comp(model="gpt-4", prompt="x")
        fail("a request for another model was accepted")
    except openai.NotFoundError as e:
        check(e.body["code"] == "model_not_found" and e.body["param"] == "model", f"wrong model: {e.body}")
    after = metrics(d)
    n = delta(before, after, rejected("INVALID_ARGUMENT"))
    check(n == len(cases) + 1, f"lilserve_requests_rejected_total{{INVALID_ARGUMENT}} grew by {n}, "
          f"expected {len(cases) + 1}")
    check(delta(before, after, rejected("NOT_FOUND")) == 1, "the wrong model is not counted as NOT_FOUND")
    print(f"ok {len(cases) + 2} invalid requests -> 400 naming the field (and counted as rejected)", flush=True)


# Inter-token latency is left out: its count depends on how tokens group into chunks (a
# chunk of n tokens after the first counts n gaps), which is timing, for gRPC as for HTTP.
COUNTED = [finished("length"), "lilserve_generation_tokens_total", "lilserve_prompt_tokens_total",
           "lilserve_time_to_first_token_seconds_count", "lilserve_e2e_request_latency_seconds_count", "lilserve_request_queue_time_seconds_count",
           'lilserve_monitor_early_stops_total{monitor_mode="enforce"}',
           'lilserve_monitor_tokens_saved_total{monitor_mode="enforce"}']


def test_metrics_like_grpc(d, c):
    """One gRPC request, then the same request over HTTP (JSON, then SSE): every series moves the same."""
    def grpc_once():
        generate(d, prompt=PROMPT, sampling=pb.SamplingParams(temperature=0),
                 stopping=pb.StoppingParams(max_tokens=10, ignore_eos=True))

    def http_once():
        c.completions.create(model=MODEL, prompt=PROMPT, max_tokens=10, temperature=0, extra_body={"ignore_eos": True})

    def sse_once():
        stream_text(c.completions.create(model=MODEL, prompt=PROMPT, max_tokens=10, temperature=0, stream=True,
                                         extra_body={"ignore_eos": True}))
    deltas, itl = [], []
    for run in (grpc_once, http_once, sse_once):
        before = metrics(d)
        run()
        after = metrics(d)
        deltas.append({k: delta(before, after, k) for k in COUNTED})
        itl.append(delta(before, after, "lilserve_inter_token_latency_seconds_count"))
    check(all(0 < n <= 9 for n in itl), f"inter-token latency samples (10 tokens): {itl}")
    check(deltas[0][finished("length")] == 1 and deltas[0]["lilserve_generation_tokens_total"] == 10,
          f"gRPC request counted as {deltas[0]}")
    check(deltas[1] == deltas[0] and deltas[2] == deltas[0],
          f"counted differently: gRPC {deltas[0]}, HTTP JSON {deltas[1]}, HTTP SSE {deltas[2]}")
    # A monitor stop moves the monitor series the same way too.
    monitor = {"mode": "enforce", "interval_tokens": 16, "min_gain_bytes": 1000000}
    before = metrics(d)
    _, fin, _, _ = generate(d, prompt=PROMPT, stopping=pb.StoppingParams(max_tokens=60, ignore_eos=True),
                            monitor=pb.MonitorParams(mode=pb.ENFORCE, interval_tokens=16, min_gain_bytes=1000000))
    mid = metrics(d)
    r = c.completions.create(model=MODEL, prompt=PROMPT, max_tokens=60, extra_body={"ignore_eos": True, "monitor": monitor})
    after = metrics(d)
    for k in COUNTED[-2:] + [finished("early_stop")]:
        check(delta(before, mid, k) == delta(mid, after, k) > 0, f"{k}: gRPC {delta(before, mid, k)}, "
              f"HTTP {delta(mid, after, k)} (usage {fin.usage} / {r.usage})")
    print(f"ok metrics: an HTTP request (JSON or SSE) moves {len(COUNTED) + 1} series exactly as a gRPC one",
          flush=True)


def test_disconnect(d, c):
    before = metrics(d)
    stream = c.completions.create(model=MODEL, prompt=PROMPT * 4, max_tokens=2000, stream=True,
                                  extra_body={"ignore_eos": True}, extra_headers={"X-Request-Id": "oa-disc"})
    got = 0
    for _ in stream:
        got += 1
        if got == 3:
            break
    check(d.info().running == 1, "the request is not running")
    steps_at_close = metrics(d)["lilserve_steps_total"]
    stream.close()
    t0 = time.time()
    while d.info().running != 0 and time.time() - t0 < 10:
        time.sleep(0.01)
    freed_s = time.time() - t0
    info = d.wait_idle()
    after = metrics(d)
    steps = after["lilserve_steps_total"] - steps_at_close
    check(info.pages_free + info.pages_cached == info.pages_total, f"pages leaked: {info}")
    check(delta(before, after, finished("cancelled")) == 1, "the closed stream is not counted as cancelled")
    check(not d.control.Abort(pb.AbortRequest(request_id="oa-disc")).found, "the request id is still live")
    # The worker sleeps in poll() on the socket too, so the cancel reaches the engine while the
    # step in flight runs; the next step drops the request (2 steps here; 3 allows for a loaded
    # machine delaying the worker's wake-up).
    check(steps <= 3, f"{steps:.0f} engine steps ran after the client closed the stream")
    # A non-streaming request whose client hangs up: nothing is written to it before the end,
    # so only the socket watch can notice (without it the request runs to max_tokens).
    before = after
    s = socket.create_connection(("127.0.0.1", d.http_port))
    body = json.dumps({"prompt": PROMPT, "max_tokens": 2000, "ignore_eos": True}).encode()
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n" % len(body) + body)
    t_end = time.time() + 10
    while d.info().running == 0 and time.time() < t_end:
        time.sleep(0.02)
    time.sleep(0.3)
    s.close()
    d.wait_idle(timeout=10)
    check(delta(before, metrics(d), finished("cancelled")) == 1, "the non-streaming hang-up is not cancelled")
    print(f"ok disconnect: stream closed -> request cancelled after {steps:.0f} engine steps "
          f"({freed_s * 1000:.0f} ms), pages freed; non-streaming hang-up cancelled too", flush=True)


def test_abort_by_request_id(d, c):
    """Control.Abort (gRPC) finds an HTTP request by its X-Request-Id."""
    stream = c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": PROMPT}],
                                       max_tokens=2000, stream=True, extra_body={"ignore_eos": True},
                                       extra_headers={"X-Request-Id": "oa-abort"})
    reasons = []
    for i, chunk in enumerate(stream):
        if i == 2:
            check(d.control.Abort(pb.AbortRequest(request_id="oa-abort")).found, "Abort did not find oa-abort")
        reasons += [ch.finish_reason for ch in chunk.choices if ch.finish_reason]
        check(chunk.id == "chatcmpl-oa-abort", f"chunk id {chunk.id}")
    check(reasons == ["aborted"], f"aborted stream ended with {reasons}")
    d.wait_idle()
    print("ok Control.Abort of an HTTP request by X-Request-Id (finish aborted)", flush=True)


def test_lilctl_bench(d):
    """lilctl bench --http: the load generator's OpenAI mode (docs/PERF.md) counts every token."""
    lilctl = os.environ.get("LILCTL", os.path.join(os.environ.get("LILSERVE_BUILD", "build"), "tools", "lilctl"))
    p = subprocess.run([lilctl, "bench", "--http", f"http://127.0.0.1:{d.http_port}", "-n", "3", "-c", "3",
                        "--prompt-tokens-min", "4", "--prompt-tokens-max", "8", "--output-tokens-min", "4",
                        "--output-tokens-max", "4", "--progress", "false"], capture_output=True, text=True,
                       timeout=120)
    check(p.returncode == 0 and "OpenAI HTTP API" in p.stdout and "requests 3, concurrency 3, failed 0" in p.stdout
          and "output tokens 12" in p.stdout and "LENGTH=3" in p.stdout, f"lilctl bench --http: {p.stdout}{p.stderr}")
    print("ok lilctl bench --http", flush=True)


def cert_for_127(directory):
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    p = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                        "-keyout", key, "-out", cert], capture_output=True, text=True)
    check(p.returncode == 0, f"openssl failed: {p.stderr}")
    return cert, key


def test_tls_auth_queue_drain():
    cert, key = cert_for_127(tempfile.mkdtemp(prefix="lilserve_oa_tls_"))
    with open(cert, "rb") as f:
        root = f.read()
    d = start("--auth-token", "s3cret", "--tls-cert", cert, "--tls-key", key, "--max-waiting", "1",
              "--max-running-seqs", "1", "--drain-grace-s", "1", tls_root=root)
    ctx = ssl.create_default_context(cafile=cert)
    with d:
        tls_auth_queue_drain(d, ctx)


def tls_auth_queue_drain(d, ctx):
    # Loading: the HTTP API listens before the model loads and answers 503 until it is ready.
    seen = []
    end = time.time() + 120
    with httpx.Client(trust_env=False, verify=ctx, timeout=5) as h:
        while time.time() < end and (not seen or seen[-1] != 200):
            try:
                st = h.get(f"https://127.0.0.1:{d.http_port}/v1/models",
                           headers={"Authorization": "Bearer s3cret"}).status_code
            except httpx.TransportError:
                st = "no connection"
            if not seen or seen[-1] != st:
                seen.append(st)
            time.sleep(0.02)
        check(503 in seen and seen[-1] == 200, f"/v1/models while loading went {seen}")
        status = h.post(f"https://127.0.0.1:{d.http_port}/v1/completions", json={"prompt": "x"}).status_code
        check(status == 401, f"no token: HTTP {status}")
    good = client(d, "https", key="s3cret", verify=ctx)
    try:
        client(d, "https", key="wrong", verify=ctx).completions.create(model=MODEL, prompt="x", max_tokens=1)
        fail("a wrong token was accepted")
    except openai.AuthenticationError as e:
        check(e.status_code == 401 and e.body["code"] == "invalid_api_key", f"wrong token: {e}")
    try:
        client(d, "http", key="s3cret", timeout=5).completions.create(model=MODEL, prompt="x", max_tokens=1)
        fail("plaintext HTTP reached the HTTPS port")
    except openai.APIConnectionError:
        pass
    r = good.completions.create(model=MODEL, prompt="x", max_tokens=2)
    check(r.choices[0].finish_reason in ("length", "stop"), f"authorized HTTPS call: {r}")
    print(f"ok HTTPS (same cert as gRPC) + bearer token: 401 without or with a wrong one; loading {seen}",
          flush=True)
    # Queue full: --max-running-seqs 1 --max-waiting 1 and a burst of 8.
    outcomes, lock = [], threading.Lock()

    def run():
        try:
            out = good.completions.create(model=MODEL, prompt=PROMPT, max_tokens=3).choices[0].finish_reason
        except openai.RateLimitError as e:
            out = e.status_code
        with lock:
            outcomes.append(out)
    threads = [threading.Thread(target=run) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    check(len(outcomes) == 8 and 429 in outcomes and set(outcomes) <= {429, "length", "stop"},
          f"burst outcomes: {outcomes}")
    d.metadata = [("authorization", "Bearer s3cret")]
    d.wait_idle()
    print(f"ok queue full: {outcomes.count(429)}/8 got 429", flush=True)
    # Draining: a running stream, SIGTERM, new requests get 503, the stream ends cancelled.
    result = {}

    def long_stream():
        text, last, _, _, _ = stream_text(good.completions.create(
            model=MODEL, prompt=PROMPT, max_tokens=5000, stream=True, extra_body={"ignore_eos": True}))
        result["reason"] = last.finish_reason
    t = threading.Thread(target=long_stream)
    t.start()
    t_end = time.time() + 30
    while d.info().running == 0 and time.time() < t_end:
        time.sleep(0.05)
    d.proc.send_signal(15)
    saw_503 = False
    t_end = time.time() + 5
    while time.time() < t_end and not saw_503:
        try:
            good.completions.create(model=MODEL, prompt="x", max_tokens=1)
        except openai.APIStatusError as e:
            saw_503 = e.status_code == 503 and "draining" in str(e.body)
        except openai.APIConnectionError:
            break
        time.sleep(0.05)
    t.join(60)
    rc = d.proc.wait(60)
    check(saw_503, "no 503 while draining")
    check(result.get("reason") == "cancelled", f"the running stream after the grace period: {result}")
    check(rc == 0, f"lilserve exited {rc}")
    print("ok drain: 503 for new requests, the running stream ends with finish_reason cancelled, exit 0",
          flush=True)


def main():
    t0 = time.time()
    d = start("--max-running-seqs", "8")
    with d:
        d.wait_ready()
        c = client(d)
        test_models(c)
        greedy = test_completions(d, c)
        test_chat(d, c)
        test_stop_strings(c, greedy)
        test_monitor_and_deadline(c)
        test_logprobs_and_seed(c)
        test_invalid(d, c)
        test_metrics_like_grpc(d, c)
        test_disconnect(d, c)
        test_abort_by_request_id(d, c)
        test_lilctl_bench(d)
        check(d.stop() == 0, "lilserve did not exit 0 on SIGTERM")
    test_tls_auth_queue_drain()
    print(f"PASS openai_api_test in {time.time() - t0:.1f}s", flush=True)


if __name__ == "__main__":
    main()

# File: tests/deploy/live_prometheus_test.py
# Every PromQL expression of deploy/ on a real Prometheus that scraped real lilserve daemons.
#
# Two daemons of the default model, started with the ConfigMap's flags file
# (deploy/kubernetes/base/lilserve.toml; ports and sizes overridden), are scraped by Prometheus
# running deploy/prometheus/prometheus.yml (its Kubernetes discovery swapped for static targets
# that carry the __meta_kubernetes_* labels of two pods, so its relabeling is what runs) and
# evaluating deploy/prometheus/rules. Then:
#   A (16 MiB of KV, 16 running): pressure requests that exhaust the KV pool (preemptions,
#     evictions), a prefix-cache hit, the monitor in enforce / conclude / shadow, sparse sink /
#     quest / h2o, client cancels, deadlines, aborts and invalid calls;
#   B (one running): a request holds the only slot while 40 queue behind it (queue over 32)
#     and 30 more overflow --max-waiting 48 (RESOURCE_EXHAUSTED); it is aborted after 3 s
#     (TTFT over 2.5 s for the queued ones); then SIGTERM drains B with a request running
#     (ready 0, draining 1).
# Checked over that window: every dashboard expression, recording rule and adapter query
# returns finite data; every alert's operands return data; exactly the alerts this traffic
# should trigger went pending, and the others stayed silent for the reason printed; the
# queries vLLM's own dashboard makes (metric names of --metrics-compat=vllm) return data.
import asyncio
import glob
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from deploy_common import DEPLOY, check, fail, find, is_number, operands, render_overlay  # noqa: E402
from lilserve_harness import Daemon, free_port, grpc, pb, rpc  # noqa: E402

NAMESPACE = "lilserve-test"
BASE_FLAGS = os.path.join(DEPLOY, "kubernetes", "base", "lilserve.toml")
RATE_INTERVAL = "10s"  # what Grafana's $__rate_interval is at a 1 s scrape interval and 1 s step

# Alerts this traffic must trigger (pending: `for` is minutes, the test is seconds).
EXPECTED_PENDING = {
    "LilserveKVCacheExhausted": "daemon A ran out of KV pages and preempted",
    "LilserveHighErrorRate": "daemon B refused the overflow with RESOURCE_EXHAUSTED",
    "LilserveHighCancelRate": "daemon A's cancels, deadlines and aborts",
    "LilserveTTFTBudgetBurnFast": "48 requests waited over 3 s behind daemon B's only slot",
    "LilserveTTFTBudgetBurnSlow": "the same requests over the long windows",
    "LilserveQueueGrowing": "over 32 requests queued on daemon B",
}
# Alerts that must stay silent, and why that is right.
EXPECTED_SILENT = {
    "LilserveDown": "both targets answered every scrape (the window ends before B exits)",
    "LilserveAllDown": "targets were up throughout",
    "LilserveNotReady": "ready throughout; while B drained, ready was 0 but draining 1, which the rule excludes",
    "LilserveMonitorStopRateJump": "the 30 m and 6 h windows hold the same requests, so the share cannot double",
}
# The queries vLLM's Grafana dashboard (examples/.../prometheus_grafana/grafana.json) makes,
# written out by metric and form: quantiles of its histograms, means, token rates, scheduler
# gauges, cache usage, prompt / generation length heatmaps, finish reasons, queue, prefill and
# decode time, max generation tokens.
VLLM_DASHBOARD = (
    [f'histogram_quantile({q}, sum by(le) (rate(vllm:{h}_bucket{{model_name="$model_name"}}[$__rate_interval])))'
     for h in ("e2e_request_latency_seconds", "time_per_output_token_seconds", "time_to_first_token_seconds")
     for q in (0.99, 0.95, 0.9, 0.5)]
    + [f'rate(vllm:{h}_sum{{model_name="$model_name"}}[$__rate_interval]) / rate(vllm:{h}_count{{model_name="$model_name"}}[$__rate_interval])'
       for h in ("e2e_request_latency_seconds", "time_per_output_token_seconds", "time_to_first_token_seconds")]
    + ['rate(vllm:prompt_tokens_total{model_name="$model_name"}[$__rate_interval])',
       'rate(vllm:generation_tokens_total{model_name="$model_name"}[$__rate_interval])',
       'vllm:num_requests_running{model_name="$model_name"}',
       'vllm:num_requests_waiting{model_name="$model_name"}',
       'vllm:gpu_cache_usage_perc{model_name="$model_name"}',
       'sum by(le) (increase(vllm:request_prompt_tokens_bucket{model_name="$model_name"}[$__rate_interval]))',
       'sum by(le) (increase(vllm:request_generation_tokens_bucket{model_name="$model_name"}[$__rate_interval]))',
       'sum by(finished_reason) (increase(vllm:request_success_total{model_name="$model_name"}[$__rate_interval]))',
       'rate(vllm:request_queue_time_seconds_sum{model_name="$model_name"}[$__rate_interval])',
       'rate(vllm:request_prefill_time_seconds_sum{model_name="$model_name"}[$__rate_interval])',
       'rate(vllm:request_decode_time_seconds_sum{model_name="$model_name"}[$__rate_interval])',
       'rate(vllm:request_max_num_generation_tokens_sum{model_name="$model_name"}[$__rate_interval])'])
# Panels of that dashboard lilserve does not feed (series it does not export): none today.
VLLM_NOT_EXPORTED = {}


class Prometheus:
    """A real Prometheus running deploy/prometheus/prometheus.yml against the daemons."""

    def __init__(self, targets, model):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="lilserve_deploy_prom_")
        with open(os.path.join(DEPLOY, "prometheus", "prometheus.yml")) as f:
            cfg = yaml.safe_load(f)
        cfg["global"].update(scrape_interval="1s", evaluation_interval="1s")
        cfg["rule_files"] = [os.path.join(DEPLOY, "prometheus", p) for p in cfg["rule_files"]]
        job = next(j for j in cfg["scrape_configs"] if j["job_name"] == "lilserve")
        check(job.pop("kubernetes_sd_configs") == [{"role": "pod"}], "prometheus.yml: lilserve job discovery")
        job.update(scrape_interval="1s", scrape_timeout="1s")

        def pod(name, port, app="lilserve", port_name="metrics"):
            return {"targets": [f"127.0.0.1:{port}"],
                    "labels": {"__meta_kubernetes_namespace": NAMESPACE,
                               "__meta_kubernetes_pod_name": name,
                               "__meta_kubernetes_pod_label_app_kubernetes_io_name": app,
                               "__meta_kubernetes_pod_label_model": model,
                               "__meta_kubernetes_pod_container_port_name": port_name}}
        # The two daemons as pods, plus what the keep rules must drop: another app's pod and
        # a lilserve pod's gRPC port (both point at a daemon, so keeping them would show).
        job["static_configs"] = ([pod(n, p) for n, p in targets]
                                 + [pod("other-app", targets[0][1], app="other"),
                                    pod(targets[0][0], targets[0][1], port_name="grpc")])
        path = os.path.join(self.dir, "prometheus.yml")
        with open(path, "w") as f:
            yaml.safe_dump(cfg, f)
        self.log = open(os.path.join(self.dir, "log.txt"), "w")
        self.proc = subprocess.Popen(
            ["prometheus", "--config.file=" + path, "--storage.tsdb.path=" + os.path.join(self.dir, "data"),
             f"--web.listen-address=127.0.0.1:{self.port}"], stdout=self.log, stderr=subprocess.STDOUT)

    def api(self, path, **params):
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?" + urllib.parse.urlencode(params, doseq=True)
        try:
            with urllib.request.urlopen(url, timeout=20) as r:
                body = json.loads(r.read())
        except urllib.error.HTTPError as e:
            body = json.loads(e.read())
        except OSError:
            return None
        if body.get("status") != "success":
            fail(f"Prometheus {path} {params}: {body.get('error')}")
        return body["data"]

    def query(self, expr, t=None):
        return self.api("query", query=expr, **({"time": t} if t else {}))

    def range(self, expr, start, end):
        return self.api("query_range", query=expr, start=start, end=end, step="1s")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def finite_points(data):
    if data is None:
        return 0
    if data["resultType"] == "scalar":
        return int(math.isfinite(float(data["result"][1])))
    n = 0
    for s in data["result"]:
        values = s.get("values") or ([s["value"]] if "value" in s else [])
        n += sum(1 for _, v in values if math.isfinite(float(v)))
    return n


def extreme(data, fn):
    vals = [float(v) for s in data["result"] for _, v in s.get("values", []) if math.isfinite(float(v))]
    return fn(vals) if vals else float("nan")


# ---- traffic --------------------------------------------------------------------------------
PROMPT = ("The history of the lighthouse keepers of the northern coast begins with a small stone "
          "tower, a lamp of whale oil, and a family who kept it burning through the long winters. ")


async def stream(stub, req, *, cancel_after=None, abort_after=None, control=None, timeout=120):
    """Runs one Generate; returns the finish reason, the gRPC error code, or 'client-cancel'."""
    call = stub.Generate(req, timeout=timeout)
    chunks = 0
    try:
        async for r in call:
            kind = r.WhichOneof("kind")
            if kind == "finished":
                return pb.FinishReason.Name(r.finished.reason)
            if kind == "chunk":
                chunks += 1
                if cancel_after and chunks >= cancel_after:
                    call.cancel()
                    return "client-cancel"
                if abort_after and chunks == abort_after:
                    await control.Abort(pb.AbortRequest(request_id=req.request_id))
        return "no-finish"
    except asyncio.CancelledError:
        return "client-cancel"
    except grpc.aio.AioRpcError as e:
        return e.code().name


def gen(rid, prompt, max_tokens, **kw):
    return pb.GenerateRequest(request_id=rid, prompt=prompt,
                              stopping=pb.StoppingParams(max_tokens=max_tokens, ignore_eos=True,
                                                         **kw.pop("stopping", {})), **kw)


async def traffic_a(port):
    """Daemon A: KV pressure, prefix cache, monitor modes, sparse modes, cancels. Few tokens:
    the CI machine has two shared cores."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub, control = rpc.InferenceStub(ch), rpc.ControlStub(ch)
        # A prefix-cache hit: the same prompt twice in a row, before the pool is under pressure.
        first = [await stream(stub, gen(f"prefix-{i}", PROMPT * 2, 2)) for i in range(2)]
        monitor = lambda mode, **kw: pb.MonitorParams(mode=mode, interval_tokens=16,  # noqa: E731
                                                      min_gain_bytes=1000000, **kw)
        jobs = []
        for i in range(5):  # ~6 pages each, with everything else, against a pool of 22
            jobs.append(stream(stub, gen(f"pressure-{i}", f"{i}: " + PROMPT, 48)))
        for i in range(2):  # the monitor stops (or would stop) at its second check, token 32
            jobs.append(stream(stub, gen(f"enforce-{i}", f"{i} " + PROMPT, 40, monitor=monitor(pb.ENFORCE))))
            jobs.append(stream(stub, gen(f"conclude-{i}", f"{i} " + PROMPT, 40,
                                         monitor=monitor(pb.CONCLUDE, conclusion_max_tokens=2))))
            jobs.append(stream(stub, gen(f"shadow-{i}", f"{i} " + PROMPT, 40, monitor=monitor(pb.SHADOW))))
        jobs.append(stream(stub, gen("sink", PROMPT, 48,
                                     sparse=pb.SparseParams(mode=pb.SINK, sink_tokens=16, window_tokens=16))))
        jobs.append(stream(stub, gen("quest", PROMPT, 32, sparse=pb.SparseParams(mode=pb.QUEST, budget_tokens=16))))
        jobs.append(stream(stub, gen("h2o", PROMPT, 48, sparse=pb.SparseParams(
            mode=pb.H2O, budget_tokens=48, sink_tokens=16, window_tokens=16))))
        for i in range(8):
            jobs.append(stream(stub, gen(f"cancel-{i}", PROMPT, 400), cancel_after=1))
        for i in range(4):
            jobs.append(stream(stub, gen(f"deadline-{i}", PROMPT, 2000, stopping={"time_limit_ms": 300})))
            jobs.append(stream(stub, gen(f"abort-{i}", PROMPT, 2000), abort_after=1, control=control))
        for i in range(3):
            jobs.append(stream(stub, pb.GenerateRequest(prompt="x", sampling=pb.SamplingParams(top_p=1.5))))
        return first + list(await asyncio.gather(*jobs))


TRAFFIC_B_TRACE = []


async def traffic_b(port):
    """Daemon B (one running slot, --max-waiting 48): 40 one-token requests queue behind a
    long request, 30 more overflow the queue (~22 refused), and after 3 s the long request is
    aborted, so every queued request waited over 2.5 s for its first token."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub, control = rpc.InferenceStub(ch), rpc.ControlStub(ch)
        started = asyncio.Event()

        async def blocker():
            async for r in stub.Generate(gen("blocker", PROMPT, 4000), timeout=120):
                started.set()
                if r.WhichOneof("kind") == "finished":
                    return pb.FinishReason.Name(r.finished.reason)
        hold = asyncio.ensure_future(blocker())
        await asyncio.wait_for(started.wait(), 60)
        queued = [asyncio.ensure_future(stream(stub, gen(f"queued-{i}", f"q{i}", 1))) for i in range(40)]
        end = time.time() + 30
        while (await control.GetServerInfo(pb.GetServerInfoRequest())).waiting < 40:
            check(time.time() < end, "daemon B: 40 requests did not queue within 30 s")
            await asyncio.sleep(0.05)
        overflow = [asyncio.ensure_future(stream(stub, gen(f"overflow-{i}", f"o{i}", 1))) for i in range(30)]
        # The refusals come back at once once sent; on a loaded machine sending 30 streams can
        # itself take seconds, so wait for them (the blocker must still be running then).
        t0 = time.time()
        end = t0 + 30
        trace = []  # (s after the overflow was sent, waiting on B, overflow calls ended): for a failure
        while sum(f.done() for f in overflow) < 10 and time.time() < end:
            await asyncio.sleep(0.05)
            if not trace or time.time() - t0 >= trace[-1][0] + 2:
                info = await control.GetServerInfo(pb.GetServerInfoRequest())
                trace.append((round(time.time() - t0, 1), info.waiting, sum(f.done() for f in overflow)))
        TRAFFIC_B_TRACE.extend(trace)
        await asyncio.sleep(3)
        check((await control.Abort(pb.AbortRequest(request_id="blocker"))).found, "daemon B: blocker not live")
        return [await hold] + list(await asyncio.gather(*queued, *overflow))


def drain(d):
    """SIGTERM with a request running: the daemon reports ready 0, draining 1 for its grace."""
    import threading
    result = {}

    def run():
        async def go():
            async with grpc.aio.insecure_channel(f"127.0.0.1:{d.port}") as ch:
                result["r"] = await stream(rpc.InferenceStub(ch), gen("drain", PROMPT, 4000), timeout=60)
        asyncio.run(go())
    t = threading.Thread(target=run)
    t.start()
    end = time.time() + 20
    while time.time() < end and d.info().running == 0:
        time.sleep(0.05)
    d.proc.send_signal(15)
    return t, result


# ---- checks ---------------------------------------------------------------------------------
def substitute(expr, model, instance=".*"):
    return (expr.replace("$model_name", model).replace("$model", model).replace("$instance", instance)
            .replace("$__rate_interval", RATE_INTERVAL))


def check_dashboards(prom, model, start, end):
    n = 0
    for path in sorted(glob.glob(os.path.join(DEPLOY, "grafana", "dashboards", "*.json"))):
        with open(path) as f:
            d = json.load(f)
        for v in d["templating"]["list"]:  # the variables' own queries
            if v["type"] == "query":
                m = re.fullmatch(r"label_values\((.*), (\w+)\)", v["query"]["query"])
                check(m, f"{path}: variable {v['name']}")
                values = {s["metric"].get(m.group(2)) for s in prom.query(substitute(m.group(1), model))["result"]}
                check(values - {None}, f"{os.path.basename(path)}: variable {v['name']} has no values")
        for p in d["panels"]:
            for t in p.get("targets", []):
                expr = substitute(t["expr"], model)
                got = finite_points(prom.range(expr, start, end))
                check(got > 0, f"{os.path.basename(path)}: panel '{p['title']}' ({t['legendFormat']}) "
                               f"returned no finite data: {expr}")
                n += 1
    return n


def rules(kind):
    out = []
    for path in sorted(glob.glob(os.path.join(DEPLOY, "prometheus", "rules", "*.rules.yml"))):
        with open(path) as f:
            for g in yaml.safe_load(f)["groups"]:
                out += [r for r in g["rules"] if kind in r]
    return out


def check_recording_rules(prom, start, end):
    for r in rules("record"):
        check(finite_points(prom.range(r["record"], start, end)) > 0,
              f"recording rule {r['record']}: Prometheus recorded no finite value")
        check(finite_points(prom.range(r["expr"], start, end)) > 0, f"{r['record']}: its expression returns nothing")
    return len(rules("record"))


def check_alerts(prom, start, end):
    pending = {s["metric"]["alertname"] for s in prom.range("ALERTS", start, end)["result"]}
    names = {r["alert"] for r in rules("alert")}
    check(set(EXPECTED_PENDING) | set(EXPECTED_SILENT) == names,
          f"alerts {sorted(names)} vs the test's lists {sorted(set(EXPECTED_PENDING) | set(EXPECTED_SILENT))}")
    check(pending == set(EXPECTED_PENDING),
          f"alerts pending/firing {sorted(pending)}, expected {sorted(EXPECTED_PENDING)}")
    lines = []
    for r in rules("alert"):
        parts = []
        for op in operands(r["expr"]):
            if is_number(op):
                parts.append(op.strip())
                continue
            data = prom.range(op, start, end)
            check(finite_points(data) > 0, f"{r['alert']}: operand `{op.strip()}` returned no data")
            parts.append(f"{op.strip()} in [{extreme(data, min):.3g}, {extreme(data, max):.3g}]")
        verdict = EXPECTED_PENDING.get(r["alert"])
        lines.append(f"  {r['alert']}: {'pending: ' + verdict if verdict else 'silent: ' + EXPECTED_SILENT[r['alert']]}"
                     f"\n      {'; '.join(parts)}")
    return lines


def check_adapter(prom, start, end):
    with open(os.path.join(DEPLOY, "prometheus", "prometheus-adapter.yaml")) as f:
        (rule,) = yaml.safe_load(f)["rules"]
    check(prom.range(rule["seriesQuery"], start, end)["result"], "adapter seriesQuery returned nothing")
    series = re.match(r"[a-zA-Z_:][\w:]*", rule["seriesQuery"]).group(0)
    # What the adapter sends for `kubectl get --raw .../namespaces/NS/pods/*/lilserve_queue_depth`.
    q = (rule["metricsQuery"].replace("<<.Series>>", series)
         .replace("<<.LabelMatchers>>", f'namespace="{NAMESPACE}",pod=~"lilserve-a|lilserve-b"')
         .replace("<<.GroupBy>>", "pod"))
    data = prom.range(q, start, end)
    pods = {s["metric"].get("pod"): max(float(v) for _, v in s["values"]) for s in data["result"]}
    check(set(pods) == {"lilserve-a", "lilserve-b"} and pods["lilserve-b"] >= 32,
          f"adapter metricsQuery {q}: per-pod peaks {pods}")
    return pods


def check_vllm(prom, model, start, end):
    names = prom.api("label/model_name/values", **{"match[]": '{__name__=~"vllm:.*"}'})
    check(model in names, f"vLLM dashboard's model_name variable: {names}")
    for expr in VLLM_DASHBOARD:
        check(finite_points(prom.range(substitute(expr, model), start, end)) > 0,
              f"vLLM dashboard query returned no data: {expr}")
    for expr, what in VLLM_NOT_EXPORTED.items():
        check(not prom.range(substitute(expr, model), start, end)["result"],
              f"lilserve now exports {what}: move `{expr}` into VLLM_DASHBOARD and update deploy/README.md")
    return len(VLLM_DASHBOARD)


def counters(prom, t):
    def val(expr):
        r = prom.query(expr, t)["result"]
        return sum(float(s["value"][1]) for s in r)
    c = {}
    for reason in ("early_stop", "cancelled", "deadline", "aborted", "length"):
        c[reason] = val(f'lilserve_requests_total{{finish_reason="{reason}"}}')
    for mode in ("enforce", "conclude", "shadow"):
        c[f"early_stop[{mode}]"] = val(f'lilserve_monitor_early_stops_total{{monitor_mode="{mode}"}}')
    for name in ("kv_pages_evicted_total", "preemptions_total", "kv_pages_freed_by_policy_total",
                 "monitor_shadow_tokens_would_save_total", "cached_prompt_tokens_total"):
        c[name] = val("lilserve_" + name)
    for code in ("RESOURCE_EXHAUSTED", "INVALID_ARGUMENT"):
        c[code] = val(f'lilserve_requests_rejected_total{{code="{code}"}}')
    return c


def main():
    t0 = time.time()
    model = find(render_overlay("single-gpu"), "Deployment")["spec"]["template"]["metadata"]["labels"]["model"]
    common = ("--config", BASE_FLAGS, "--metrics-compat", "vllm")
    a = Daemon(*common, "--kv-mib", "16", "--max-running-seqs", "16", "--max-waiting", "256")
    # B's pool holds the blocker's whole 4,000 tokens (46 KB of fp32 KV a token: 186 MB); with 64
    # MiB it would run out at ~1,440 tokens, be preempted and let the queue drain behind it.
    b = Daemon(*common, "--kv-mib", "256", "--max-running-seqs", "1", "--max-waiting", "48", "--drain-grace-s", "3")
    prom = None
    try:
        a.wait_ready()
        b.wait_ready()
        prom = Prometheus([("lilserve-a", a.metrics_port), ("lilserve-b", b.metrics_port)], model)
        end = time.time() + 30
        up = []
        while time.time() < end:
            time.sleep(0.5)
            up = (prom.query('up{job="lilserve"} == 1') or {"result": []})["result"]
            if len(up) >= 2:
                break
        check(len(up) == 2, f"Prometheus up series: {up}\n{open(prom.log.name).read()[-2000:]}")
        labels = sorted((s["metric"]["pod"], s["metric"]["namespace"], s["metric"]["model"]) for s in up)
        check(labels == [("lilserve-a", NAMESPACE, model), ("lilserve-b", NAMESPACE, model)],
              f"relabeling gave {labels}")
        check(len(prom.query("up")["result"]) == 2, "the keep rules let another app or port through")
        # Before the first scrape LilserveAllDown's absent() held: the window opens once the
        # rules have seen the targets (no alert pending) with the daemons idle.
        while prom.query("ALERTS")["result"]:
            check(time.time() < end + 30, f"alerts pending with idle daemons: {prom.query('ALERTS')['result']}")
            time.sleep(0.2)
        start = time.time()
        outcome_a = asyncio.run(traffic_a(a.port))
        t_a = time.time()
        outcome_b = asyncio.run(traffic_b(b.port))
        t_b = time.time()
        thread, result = drain(b)
        time.sleep(2.5)
        stop = time.time()
        thread.join(60)
        check(b.proc.wait(60) == 0 and result.get("r") == "CANCELLED", f"drain: {result}, exit {b.proc.returncode}")
        time.sleep(1.5)  # let the rules evaluate the last samples
        count = lambda xs: {k: xs.count(k) for k in sorted(set(xs))}  # noqa: E731
        print(f"traffic A ({t_a - start:.1f} s): {count(outcome_a)}", flush=True)
        print(f"traffic B ({t_b - t_a:.1f} s): {count(outcome_b)}", flush=True)
        # 70 calls for 48 queue places: 22 refused while the blocker holds the only slot. (Before
        # the engine counted the requests it had just taken from its inbox, a step could let
        # another 48 in: 62 queued, 8 refused in one fresh-clone run.)
        check(outcome_b[0] == "ABORTED" and outcome_b.count("LENGTH") + outcome_b.count("RESOURCE_EXHAUSTED") == 70
              and outcome_b.count("RESOURCE_EXHAUSTED") >= 10,
              f"daemon B: {count(outcome_b)}; (s, waiting, overflow calls ended) while waiting for the "
              f"refusals: {TRAFFIC_B_TRACE}")
        c = counters(prom, stop)
        print("scraped at the end: " + ", ".join(f"{k} {v:g}" for k, v in c.items()), flush=True)
        zero = [k for k, v in c.items() if v <= 0]
        check(not zero, f"the traffic did not produce {zero}")

        n_dash = check_dashboards(prom, model, start, stop)
        print(f"ok dashboards: {n_dash} panel expressions and the variables' queries return finite data", flush=True)
        n_rec = check_recording_rules(prom, start, stop)
        print(f"ok recording rules: {n_rec} recorded with finite values", flush=True)
        lines = check_alerts(prom, start, stop)
        print(f"ok alerts: {len(EXPECTED_PENDING)} went pending as this traffic should, {len(EXPECTED_SILENT)} "
              "stayed silent; every operand returned data:\n" + "\n".join(lines), flush=True)
        pods = check_adapter(prom, start, stop)
        print(f"ok prometheus-adapter metricsQuery: lilserve_queue_depth per pod peaked at {pods}", flush=True)
        n_vllm = check_vllm(prom, model, start, stop)
        print(f"ok vLLM's dashboard: all {n_vllm} of its queries return data with --metrics-compat=vllm"
              + (f"; not fed: {', '.join(VLLM_NOT_EXPORTED.values())}" if VLLM_NOT_EXPORTED else ""), flush=True)
    except SystemExit:
        for d in (a, b):
            print(d.logs()[-1500:])
        raise
    finally:
        if prom:
            prom.stop()
        for d in (a, b):
            if d.proc.poll() is None:
                d.proc.kill()
    print(f"PASS deploy_live_prometheus_test in {time.time() - t0:.1f}s", flush=True)


if __name__ == "__main__":
    main()

# File: tests/reliability/soak_test.py
# Load and soak on loopback: the real daemon (CPU, default model) with a KV pool small enough
# to force preemptions, under ~1,000 concurrent Generate streams with random prompt lengths,
# random client cancellations, gRPC deadlines, server time limits and Abort calls, for a
# bounded time. Checks:
#   - every accepted request ends exactly once (one finished message per uncancelled stream;
#     the daemon's per-reason counters add up to the calls it accepted, never more);
#   - each greedy stream's tokens equal the same request run alone (a prefix of them when it
#     was cut short), so nothing is mixed between streams, through preemption and recompute;
#   - no page leaks (running, waiting and used pages return to 0, the metrics agree);
#   - resident memory flat after warm-up; the daemon stays SERVING and serves afterwards.
#   soak_test.py                       CI: 60 s of load
#   soak_test.py --duration 300        longer soak (docs/RELIABILITY.md figures)
# Figures are printed and written to $LILSERVE_BUILD/reliability/soak.json.
import argparse
import asyncio
import collections
import json
import os
import random
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from lilserve_harness import BUILD, Daemon, check, fail, grpc, pb, rpc  # noqa: E402

WORDS = ("the of and to in that he shall unto for his a lord they be is him not them it with all "
         "thou thy was which my me said but ye their have will were upon this when out hath an by "
         "king house people day land children against men there came made went city water light "
         "river mountain morning evening bread stone silver gold field harvest river wind fire").split()


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def metric_sum(text, name):
    return sum(float(v) for v in re.findall(r"^" + re.escape(name) + r"(?:\{[^}]*\})? (\S+)$", text, re.M))


def make_kinds(rng, n, max_prompt_words):
    kinds = []
    for _ in range(n):
        words = rng.randint(1, max_prompt_words)
        prompt = " ".join(rng.choice(WORDS) for _ in range(words)).capitalize()
        kinds.append({"prompt": prompt, "max_tokens": rng.randint(1, 16)})
    return kinds


def greedy_request(kind, rid, **extra):
    return pb.GenerateRequest(request_id=rid, prompt=kind["prompt"],
                              sampling=pb.SamplingParams(temperature=0),
                              stopping=pb.StoppingParams(max_tokens=kind["max_tokens"], ignore_eos=True,
                                                         **extra))


def run_alone(d, kinds):
    refs = []
    for i, k in enumerate(kinds):
        ids, fin = [], None
        for r in d.inference.Generate(greedy_request(k, f"ref-{i}"), timeout=120):
            if r.WhichOneof("kind") == "chunk":
                ids += list(r.chunk.token_ids)
            elif r.WhichOneof("kind") == "finished":
                fin = r.finished
        check(fin is not None and fin.reason == pb.LENGTH and len(ids) == k["max_tokens"],
              f"reference {i}: {fin} with {len(ids)} tokens")
        refs.append(ids)
    return refs


class Load:
    def __init__(self, d, kinds, refs, args):
        self.d, self.kinds, self.refs, self.args = d, kinds, refs, args
        self.rng = random.Random(args.seed)
        self.count = collections.Counter()
        self.calls = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.errors = []
        self.last_print = 0
        self.load_end = 0
        self.left_at_drain_end = 0

    def err(self, msg):
        if len(self.errors) < 20:
            self.errors.append(msg)

    async def one(self, stubs, i):
        rng = self.rng
        k = rng.randrange(len(self.kinds))
        kind, ref = self.kinds[k], self.refs[k]
        rid = f"soak-{i}"
        action = rng.choices(["none", "cancel", "deadline", "abort", "time_limit", "sampled"],
                             [55, 15, 10, 10, 5, 5])[0]
        if action == "time_limit":
            req = greedy_request(kind, rid, time_limit_ms=rng.randint(1, 3000))
        elif action == "sampled":
            req = pb.GenerateRequest(request_id=rid, prompt=kind["prompt"],
                                     sampling=pb.SamplingParams(temperature=0.8, seed=rng.randint(0, 1 << 30)),
                                     stopping=pb.StoppingParams(max_tokens=kind["max_tokens"]))
        else:
            req = greedy_request(kind, rid)
        inference, control = stubs[i % len(stubs)]
        timeout = rng.uniform(0.3, 5.0) if action == "deadline" else 900
        cut_at = rng.randint(1, max(1, kind["max_tokens"]))
        self.calls += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        ids, finished, reason = [], 0, None
        cut = False  # the client ended the call (cancel, deadline): no finish is owed
        call = inference.Generate(req, timeout=timeout)
        try:
            async for r in call:
                if finished:
                    self.err(f"{rid}: message after finished")
                which = r.WhichOneof("kind")
                if which == "chunk":
                    ids += list(r.chunk.token_ids)
                    if action == "cancel" and len(ids) >= cut_at:
                        call.cancel()
                        self.count["client_cancelled"] += 1
                        cut = True
                        break
                    if action == "abort" and len(ids) >= cut_at and not finished:
                        await control.Abort(pb.AbortRequest(request_id=rid), timeout=30)
                        action = "aborted"
                elif which == "finished":
                    finished += 1
                    reason = pb.FinishReason.Name(r.finished.reason)
                    if r.finished.usage.completion_tokens != len(ids):
                        self.err(f"{rid}: usage {r.finished.usage.completion_tokens} != {len(ids)} streamed")
                else:
                    self.err(f"{rid}: unexpected message {which}")
            if action != "cancel" or len(ids) < cut_at:
                if finished != 1:
                    self.err(f"{rid}: {finished} finished messages ({action})")
                self.count["finish_" + str(reason)] += 1
        except asyncio.CancelledError:  # the end of the drain
            self.count["client_cancelled_at_end"] += 1
            cut = True
        except grpc.aio.AioRpcError as e:
            cut = True
            if action == "deadline" and e.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                self.count["deadline_exceeded"] += 1
                if not ids:
                    self.count["deadline_no_output"] += 1
            elif e.code() == grpc.StatusCode.CANCELLED and action == "cancel":
                self.count["client_cancelled"] += 1
            else:
                self.err(f"{rid}: {action}: {e.code().name} {e.details()}")
        finally:
            self.in_flight -= 1
        if action != "sampled":
            if ids != ref[:len(ids)]:
                self.err(f"{rid}: tokens {ids} are not a prefix of the alone run {ref} ({action}, {reason})")
            if reason == "LENGTH" and ids != ref:
                self.err(f"{rid}: LENGTH with {ids}, alone {ref}")
            if action == "none" and not cut and reason != "LENGTH":
                self.err(f"{rid}: plain request ended {reason}")
            self.count["greedy_checked"] += 1

    async def run(self, on_tick):
        opts = [("grpc.max_concurrent_streams", 100000)]
        channels = [grpc.aio.insecure_channel(f"127.0.0.1:{self.d.port}", options=opts) for _ in range(8)]
        stubs = [(rpc.InferenceStub(c), rpc.ControlStub(c)) for c in channels]
        end = time.time() + self.args.duration
        tasks = set()
        i = 0
        last_tick = 0
        while time.time() < end:
            while len(tasks) < self.args.streams:
                tasks.add(asyncio.ensure_future(self.one(stubs, i)))
                i += 1
            done, tasks = await asyncio.wait(tasks, timeout=0.2, return_when=asyncio.FIRST_COMPLETED)
            tasks = set(tasks)
            if time.time() - last_tick >= 1.0:
                last_tick = time.time()
                on_tick()
            if time.time() - self.last_print >= 10:
                self.last_print = time.time()
                print(f"  t={time.time() - end + self.args.duration:.0f}s calls {self.calls} in flight "
                      f"{self.in_flight} {dict(self.count)}", flush=True)
        # Stop starting new calls; give the ones in flight --drain-s to end, then cancel the
        # rest from the client (the daemon must still end each exactly once).
        self.load_end = time.time()
        drain_end = time.time() + self.args.drain_s
        while tasks and time.time() < drain_end:
            done, tasks = await asyncio.wait(tasks, timeout=1.0)
            tasks = set(tasks)
            on_tick()
        self.left_at_drain_end = len(tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for c in channels:
            await c.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    ap.add_argument("--streams", type=int, default=1000, help="concurrent streams kept in flight")
    ap.add_argument("--kv-mib", type=int, default=48, help="KV pool (small: forces preemption)")
    ap.add_argument("--kinds", type=int, default=16, help="distinct greedy requests")
    ap.add_argument("--drain-s", type=float, default=60.0,
                    help="after the load, seconds for the calls in flight to end before the client cancels them")
    ap.add_argument("--max-prompt-words", type=int, default=64)
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    t0 = time.time()
    d = Daemon("--kv-mib", str(args.kv_mib), "--max-running-seqs", "48", "--max-batched-tokens", "512",
               "--max-waiting", str(4 * args.streams), "--max-model-len", "1024", "--log-level", "warn")
    with d:
        d.wait_ready()
        pages_total = d.info().pages_total
        kinds = make_kinds(random.Random(args.seed), args.kinds, args.max_prompt_words)
        t_ref = time.time()
        refs = run_alone(d, kinds)
        t_ref = time.time() - t_ref
        print(f"  {len(kinds)} reference runs alone in {t_ref:.1f}s; KV pool {pages_total} pages", flush=True)
        # The reference runs are requests too: the load's finishes are counted on top of them.
        end = time.time() + 30
        _, text = d.http("/metrics")
        while metric_sum(text, "lilserve_requests_total") < len(kinds) and time.time() < end:
            time.sleep(0.2)
            _, text = d.http("/metrics")
        base_finished = metric_sum(text, "lilserve_requests_total")
        base_rss = rss_kib(d.proc.pid)
        samples = []  # (seconds into the load, RSS KiB, in flight)
        load = Load(d, kinds, refs, args)
        t_load = time.time()

        def tick():
            samples.append((time.time() - t_load, rss_kib(d.proc.pid), load.in_flight))
            if d.proc.poll() is not None:
                fail(f"lilserve died under load: {d.logs()}")
        asyncio.run(load.run(tick))
        load_s = load.load_end - t_load
        print(f"  load done: {load.calls} calls; {load.left_at_drain_end} still in flight after the drain "
              f"were cancelled by the client", flush=True)
        check(not load.errors, "stream errors:\n  " + "\n  ".join(load.errors))
        info = d.wait_idle(120)
        check(info.pages_used == 0 and info.pages_free + info.pages_cached == info.pages_total,
              f"pages leaked: {info}")
        # The daemon's counters: exactly one finish per accepted call.
        _, text = d.http("/metrics")
        lower = load.calls - load.count["deadline_no_output"]
        end = time.time() + 30
        while metric_sum(text, "lilserve_requests_total") - base_finished < lower and time.time() < end:
            time.sleep(0.2)
            _, text = d.http("/metrics")
        time.sleep(1.0)
        _, text = d.http("/metrics")
        finished = metric_sum(text, "lilserve_requests_total") - base_finished
        rejected = metric_sum(text, "lilserve_requests_rejected_total")
        preemptions = metric_sum(text, "lilserve_preemptions_total")
        check(lower <= finished + rejected <= load.calls,
              f"daemon counted {finished} finished + {rejected} rejected for {load.calls} calls "
              f"({load.count['deadline_no_output']} deadlines with no output)")
        check(rejected == 0, f"{rejected} calls rejected")
        check(metric_sum(text, "lilserve_kv_pages_used") == 0 and
              metric_sum(text, "lilserve_num_requests_running") == 0 and
              metric_sum(text, "lilserve_num_requests_waiting") == 0, "KV / request gauges not back to 0")
        check(preemptions > 0, "the small KV pool forced no preemption; lower --kv-mib")
        check(load.max_in_flight >= min(args.streams, 1000) * 0.95,
              f"only {load.max_in_flight} streams were in flight at once")
        # Memory: after warm-up (the first 40% of the load) RSS stays flat.
        warm = [s[1] for s in samples if s[0] >= 0.4 * load_s]
        mid = [s[1] for s in samples if 0.4 * load_s <= s[0] < 0.7 * load_s]
        late = [s[1] for s in samples if s[0] >= 0.7 * load_s]
        peak = max(s[1] for s in samples)
        growth_mib = (max(late) - max(mid)) / 1024 if mid and late else 0
        trace = [(round(t), round(r / 1024), n) for t, r, n in samples[::5]]
        check(growth_mib <= 32, f"RSS grew {growth_mib:.1f} MiB after warm-up (mid max {max(mid)} KiB, "
              f"late max {max(late)} KiB); (s, RSS MiB, in flight) every 5 samples: {trace}")
        check(d.health_status() == "SERVING", "the daemon is not SERVING after the soak")
        ids = []
        for r in d.inference.Generate(greedy_request(kinds[0], "after"), timeout=60):
            if r.WhichOneof("kind") == "chunk":
                ids += list(r.chunk.token_ids)
        check(ids == refs[0], f"after the soak: {ids} vs {refs[0]}")
        figures = {
            "duration_s": round(load_s, 1), "streams_target": args.streams,
            "max_in_flight": load.max_in_flight, "calls": load.calls,
            "finished_by_daemon": finished, "preemptions": preemptions, "kv_pages_total": pages_total,
            "kv_mib": args.kv_mib, "outcomes": dict(sorted(load.count.items())),
            "rss_base_mib": round(base_rss / 1024, 1), "rss_peak_mib": round(peak / 1024, 1),
            "rss_warm_min_mib": round(min(warm) / 1024, 1) if warm else None,
            "rss_growth_after_warmup_mib": round(growth_mib, 1), "reference_runs_s": round(t_ref, 1),
            "completed_per_s": round(sum(v for k, v in load.count.items() if k.startswith("finish_")) /
                                     (time.time() - t_load), 2),
            "cancelled_at_drain_end": load.left_at_drain_end,
            "rss_trace_s_mib_inflight": trace,
        }
        check(d.stop() == 0, "lilserve did not exit 0 on SIGTERM")
    out = os.path.join(BUILD, "reliability")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "soak.json"), "w") as f:
        json.dump(figures, f, indent=1)
    print(json.dumps(figures, indent=1))
    print(f"PASS soak_test: {load.calls} calls, {preemptions:.0f} preemptions in {time.time() - t0:.1f}s",
          flush=True)


if __name__ == "__main__":
    main()

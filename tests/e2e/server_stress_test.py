# File: tests/e2e/server_stress_test.py
# 200 concurrent Generate streams against the real daemon with random client cancellations,
# short gRPC deadlines and Abort calls: every accepted request ends exactly once (the
# daemon's per-reason counters add up to the number of calls, each uncancelled stream ends
# with one finished message), no KV page leaks, and the daemon stays healthy.
import asyncio
import collections
import random
import re
import time

from lilserve_harness import Daemon, check, grpc, pb

N = 200
PROMPTS = ["In the beginning", "The quick brown fox", "Once upon a time there was",
           "The capital of France", "Numbers: 1, 2, 3,"]


async def one(stub, control, i, rng, outcome):
    rid = f"stress-{i}"
    req = pb.GenerateRequest(request_id=rid, prompt=rng.choice(PROMPTS) * rng.randint(1, 6),
                             stopping=pb.StoppingParams(max_tokens=rng.randint(1, 8)))
    action = rng.choices(["none", "cancel", "deadline", "abort"], [6, 2, 1, 1])[0]
    call = stub.Generate(req, timeout=0.3 if action == "deadline" else 120)
    finished = 0
    chunks = 0
    try:
        async for r in call:
            check(finished == 0, f"{rid}: message after finished: {r}")
            if r.WhichOneof("kind") == "finished":
                finished += 1
            elif r.WhichOneof("kind") == "chunk":
                chunks += 1
                if action == "cancel" and chunks == 1:
                    call.cancel()
                    outcome["cancelled"] += 1
                    return
                if action == "abort" and chunks == 1:
                    await control.Abort(pb.AbortRequest(request_id=rid))
        check(finished == 1, f"{rid}: stream ended with {finished} finished messages")
        outcome["finished"] += 1
    except asyncio.CancelledError:
        outcome["cancelled"] += 1
    except grpc.aio.AioRpcError as e:
        check(e.code() in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED),
              f"{rid}: unexpected {e.code()} {e.details()}")
        outcome["deadline" if action == "deadline" else f"{action}:{e.code().name}"] += 1


async def run(d):
    rng = random.Random(1234)
    outcome = collections.Counter()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{d.port}") as ch:
        from lilserve.v1 import lilserve_pb2_grpc as rpc
        stub, control = rpc.InferenceStub(ch), rpc.ControlStub(ch)
        await asyncio.gather(*[one(stub, control, i, rng, outcome) for i in range(N)])
    return outcome


def total_requests(d):
    _, text = d.http("/metrics")
    return sum(float(v) for v in re.findall(r'^lilserve_requests_total\{[^}]*\} (\S+)$', text, re.M))


def main():
    t0 = time.time()
    d = Daemon("--max-running-seqs", "64", "--max-waiting", "1000")
    with d:
        d.wait_ready()
        outcome = asyncio.run(run(d))
        check(sum(outcome.values()) == N, f"outcomes {outcome} do not add to {N}")
        info = d.wait_idle(60)
        check(info.pages_free + info.pages_cached == info.pages_total and info.pages_used == 0,
              f"pages leaked: {info}")
        end = time.time() + 30
        while total_requests(d) < N and time.time() < end:
            time.sleep(0.1)
        time.sleep(0.5)  # a request counted twice would show up now
        check(total_requests(d) == N, f"the daemon finished {total_requests(d)} requests, expected {N}")
        check(d.health_status() == "SERVING", "the daemon is not SERVING after the storm")
        _, fin, _, _ = __import__("lilserve_harness").generate(
            d, prompt="After the storm", stopping=pb.StoppingParams(max_tokens=2))
        check(fin.usage.completion_tokens >= 1, "a request after the storm generated nothing")
        check(d.stop() == 0, "lilserve did not exit 0 on SIGTERM")
    print(f"PASS server_stress_test: {outcome} in {time.time() - t0:.1f}s", flush=True)


if __name__ == "__main__":
    main()

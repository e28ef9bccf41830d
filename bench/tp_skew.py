#!/usr/bin/env python3
# File: bench/tp_skew.py
# Where a tensor-parallel all-reduce's time goes, from kernel_profiler's raw records of both
# GPUs ($LILSERVE_KPROF_RAW; CUPTI puts every GPU on one clock). For the k-th one-shot
# all-reduce of each rank (both ranks run the same collectives in the same order):
#   ready[g]   the end of the kernel before it on GPU g (its input is complete)
#   skew       ready[1] - ready[0]: how much later rank 1's partial was ready
#   exposed[g] end[g] - ready[g]: what CUPTI's exposed column charges to the all-reduce
#   exchange   min(end) - max(ready): the all-reduce once both inputs exist (launch tail,
#              NVLink round trip, the sums), the part a faster exchange could remove
# so exposed[g] = exchange + (max(ready) - ready[g]) + (end[g] - min(end)): the first term the
# kernel's own, the second the wait for the other rank. Also each kernel's mean time per GPU
# (is one GPU slower?). Usage: tp_skew.py raw.csv [kernel substring, default OneShot]
import collections
import statistics
import sys


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def main():
    path = sys.argv[1]
    needle = sys.argv[2] if len(sys.argv) > 2 else "OneShot"
    per_gpu = collections.defaultdict(list)  # device -> [(start, end, name)], start order
    with open(path) as f:
        next(f)
        for line in f:
            dev, start, end, name = line.rstrip("\n").split(",", 3)
            per_gpu[int(dev)].append((int(start), int(end), name))
    gpus = sorted(per_gpu)
    if len(gpus) != 2:
        sys.exit(f"tp_skew: records of {len(gpus)} GPUs, need 2")
    calls = {}
    for g in gpus:
        ks = per_gpu[g]
        out = []
        for i, (s, e, n) in enumerate(ks):
            if needle not in n:
                continue
            # The input is ready when every kernel that started before this one has ended.
            ready = max((ks[j][1] for j in range(max(0, i - 8), i)), default=s)
            out.append((ready, e))
        calls[g] = out
    n = min(len(calls[gpus[0]]), len(calls[gpus[1]]))
    if len(calls[gpus[0]]) != len(calls[gpus[1]]):
        print(f"warning: {len(calls[gpus[0]])} against {len(calls[gpus[1]])} calls; pairing the first {n}")
    skew, exch, exp0, exp1, wait0, wait1 = [], [], [], [], [], []
    for k in range(n):
        (r0, e0), (r1, e1) = calls[gpus[0]][k], calls[gpus[1]][k]
        skew.append((r1 - r0) / 1e3)
        exch.append((min(e0, e1) - max(r0, r1)) / 1e3)
        exp0.append((e0 - r0) / 1e3)
        exp1.append((e1 - r1) / 1e3)
        wait0.append((max(r0, r1) - r0) / 1e3)
        wait1.append((max(r0, r1) - r1) / 1e3)
    print(f"{n} all-reduces ('{needle}') on GPUs {gpus[0]} and {gpus[1]}, us\n")
    print("| quantity | mean | p10 | median | p90 |\n|---|---|---|---|---|")
    for label, xs in [("skew (GPU 1 ready - GPU 0 ready)", skew), ("|skew|", [abs(x) for x in skew]),
                      ("exposed on GPU 0", exp0), ("exposed on GPU 1", exp1),
                      ("GPU 0 waiting for GPU 1's input", wait0), ("GPU 1 waiting for GPU 0's input", wait1),
                      ("exchange (both inputs ready -> first end)", exch)]:
        print(f"| {label} | {statistics.mean(xs):.2f} | {pct(xs, 0.1):.2f} | {statistics.median(xs):.2f} | "
              f"{pct(xs, 0.9):.2f} |")
    print("\nMean kernel time per GPU (kernels launched at least 100 times on each), us\n")
    print(f"| kernel grid | launches | GPU {gpus[0]} | GPU {gpus[1]} | GPU 1 / GPU 0 |\n|---|---|---|---|---|")
    stats = {g: collections.defaultdict(list) for g in gpus}
    for g in gpus:
        for s, e, name in per_gpu[g]:
            stats[g][name].append((e - s) / 1e3)
    names = [x for x in stats[gpus[0]] if len(stats[gpus[0]][x]) >= 100 and len(stats[gpus[1]].get(x, [])) >= 100]
    names.sort(key=lambda x: -sum(stats[gpus[0]][x]))
    for x in names[:12]:
        a, b = statistics.mean(stats[gpus[0]][x]), statistics.mean(stats[gpus[1]][x])
        print(f"| {x} | {len(stats[gpus[0]][x])} | {a:.2f} | {b:.2f} | {b / a:.3f} |")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The floor of a benchmark: the time it must take at this machine's measured memory bandwidth
and FMA peak, and the fraction of that floor a measured run reached.

    floor.py measure MACHINE.json     measure both (read bandwidth: summing a 1 GiB float32 array
                                      on every core; FMA peak: float32 matrix products of 2,048³
                                      through OpenBLAS on every core; best of 3 each)
    floor.py line MACHINE.json LABEL SECONDS BYTES MACS
                                      prints `LABEL: S s; floor F s (B MB at W GB/s, M G mul-add at
                                      X G/s); reached F/S of the floor`

The floor is max(BYTES / bandwidth, MACS / peak): the bytes a run must read and the multiply-adds
it must do, whichever bounds it. Each benchmark names what it counts (see Benchmarks/run.sh).
On a machine that other jobs load, both measurements and the timings drop together.
"""
import json
import os
import sys
import threading
import time

import numpy as np


def best(f, n=3):
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return min(times)


def measure(out):
    cores = os.cpu_count() or 1
    a = np.ones(1 << 28, np.float32)  # 1 GiB
    parts = np.array_split(a, cores)

    def read_all():
        ts = [threading.Thread(target=np.add.reduce, args=(p,)) for p in parts]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    read_all()
    bw = a.nbytes / best(read_all)
    n = 2048
    x = np.ones((n, n), np.float32)
    y = np.ones((n, n), np.float32)
    x @ y
    peak = n ** 3 / best(lambda: x @ y)
    info = {"read_bytes_per_s": bw, "fma_per_s": peak, "cores": cores}
    with open(out, "w") as f:
        json.dump(info, f)
    print(f"machine: read bandwidth {bw / 1e9:.1f} GB/s, FMA peak {peak / 1e9:.1f} G mul-add/s (float32 GEMM, {cores} cores)")


def line(machine, label, seconds, nbytes, macs):
    m = json.load(open(machine))
    bw, peak = m["read_bytes_per_s"], m["fma_per_s"]
    floor = max(nbytes / bw, macs / peak)
    print(f"{label}: {seconds:.3f} s; floor {floor:.3f} s ({nbytes / 1e6:.0f} MB at {bw / 1e9:.1f} GB/s, "
          f"{macs / 1e9:.2f} G mul-add at {peak / 1e9:.0f} G/s); reached {floor / seconds:.0%} of the floor")


if __name__ == "__main__":
    if sys.argv[1] == "measure":
        measure(sys.argv[2])
    elif sys.argv[1] == "line":
        line(sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6]))
    else:
        sys.exit(f"floor.py: unknown command {sys.argv[1]}")

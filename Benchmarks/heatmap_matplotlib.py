#!/usr/bin/env python3
"""matplotlib counterpart of `plotbench` (Benchmarks/PlotBench/main.swift).

Renders an N x N (default 4096) causal attention-like map with imshow + LogNorm(1e-4, 1),
viridis, a colour bar and a title, and saves a PNG at 2 device pixels per point (dpi 144) on
the same 480 x 430 pt page. Prints `matplotlib_seconds=<best of R>` so `make bench` can take
the ratio with plotbench's `swift_seconds=`. Timing covers figure construction + savefig (the
same span as plotbench's build + render); generating the matrix is not timed.

    python3 Benchmarks/heatmap_matplotlib.py [--size 4096] [--repeat 3] [--out path.png]
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np


def synthetic_attention(n):
    """Same construction as plotbench: sink at 0, local band, an image span, hashed noise."""
    i = np.arange(n, dtype=np.int64)[:, None]
    j = np.arange(n, dtype=np.int64)[None, :]
    h = ((i * 73856093) ^ (j * 19349663)).astype(np.uint32)
    h ^= h >> np.uint32(13)
    h = (h * np.uint32(0x5BD1E995)).astype(np.uint32)
    h ^= h >> np.uint32(15)
    noise = (h & np.uint32(0xFFFF)).astype(np.float32) / np.float32(65536)
    d = (i - j).astype(np.float32)
    w = np.float32(0.02) * noise ** 3 + np.exp(-np.maximum(d, 0) / np.float32(24))
    w[:, 0] += 40
    lo, hi = n // 8, n // 8 + n // 4
    w[:, lo:hi] += np.float32(0.05) * noise[:, lo:hi]
    w = np.where(j <= i, w, 0).astype(np.float32)
    w /= w.sum(axis=1, keepdims=True)
    return np.ma.masked_where(j > i, w)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=4096)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "kvscope-plotbench-mpl.png"))
    p.add_argument("--interpolation", default="auto", help="imshow interpolation (matplotlib default: auto)")
    a = p.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    m = synthetic_attention(a.size)
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="#F2F2F2")
    best = float("inf")
    for _ in range(max(1, a.repeat)):
        t0 = time.perf_counter()
        fig, ax = plt.subplots(figsize=(480 / 72, 430 / 72), dpi=144)
        im = ax.imshow(m, norm=LogNorm(vmin=1e-4, vmax=1), cmap=cmap, interpolation=a.interpolation)
        ax.set_xlabel("key position")
        ax.set_ylabel("query position")
        ax.set_title("matplotlib: %d×%d attention-like map" % (a.size, a.size))
        fig.colorbar(im, ax=ax, label="attention weight, log")
        fig.savefig(a.out, dpi=144)
        plt.close(fig)
        best = min(best, time.perf_counter() - t0)
    print("matplotlib %s numpy %s size=%d interpolation=%s" % (matplotlib.__version__, np.__version__, a.size, a.interpolation))
    print("matplotlib_seconds=%.4f" % best)
    print("output=%s" % a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

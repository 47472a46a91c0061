#!/usr/bin/env python3
"""NumPy implementation of `lookm` (code fidelity: text prior + pivotal merge) and `snapkv`
(window 32, kernel 7, max pooling), run on the data Benchmarks/PolicyBench writes.

Usage: swift run -c release policybench DIR && python3 Benchmarks/policies_numpy.py DIR

Checks that the NumPy results equal the Swift ones (kept indices exactly, merged K/V within 1e-4)
and prints both timings and the ratio. Ties: NumPy's argpartition does not break ties by position;
the synthetic data has none in the selections.
"""
import json
import sys
import time
from pathlib import Path

import numpy as np


def lookm(colsum, text, k, v, hh, r):
    """Official text prior (code mode) + pivotal merge, per head, in float64."""
    s = colsum.astype(np.float64)
    K = k.astype(np.float64)
    V = v.astype(np.float64)
    H, P = s.shape
    m = s - 65516.0 * (~text)[None, :]
    m[:, P - r:] -= 65516.0
    top = np.argpartition(-m[:, : P - r], hh - 1, axis=1)[:, :hh]
    np.put_along_axis(m, top, 0.0, axis=1)
    m[:, P - r:] = 0.0
    keep = m >= 0
    kept_all, keys_all, values_all = [], [], []
    for h in range(H):
        kept = np.nonzero(keep[h])[0]
        ev = np.nonzero(~keep[h])[0]
        kk, ke = K[h, kept], K[h, ev]
        kn = kk / np.maximum(np.linalg.norm(kk, axis=1, keepdims=True), 1e-300)
        en = ke / np.maximum(np.linalg.norm(ke, axis=1, keepdims=True), 1e-300)
        t = (en @ kn.T).argmax(axis=1)
        cnt = np.bincount(t, minlength=len(kept)).astype(np.float64)[:, None]
        outs = []
        for X in (K, V):
            xk, xe = X[h, kept], X[h, ev]
            acc = np.zeros_like(xk)
            np.add.at(acc, t, (xe + xk[t]) / 2)
            outs.append((xk + acc) / (1 + cnt))
        kept_all.append(kept)
        keys_all.append(outs[0])
        values_all.append(outs[1])
    return np.stack(kept_all), np.stack(keys_all), np.stack(values_all)


def snapkv(attn, C, w=32, kernel=7):
    """SnapKV: window attention sums, max pooling, top C − w + the window, ascending."""
    a = attn.astype(np.float64)
    H, _, P = a.shape
    u = a[:, :, : P - w].sum(axis=1)
    half = kernel // 2
    padded = np.pad(u, ((0, 0), (half, half)), constant_values=-np.inf)
    pooled = np.lib.stride_tricks.sliding_window_view(padded, kernel, axis=1).max(axis=-1)
    # Max pooling makes exact ties; a stable sort breaks them toward the lowest position, as KVScope does.
    top = np.argsort(-pooled, axis=1, kind="stable")[:, : C - w]
    window = np.broadcast_to(np.arange(P - w, P), (H, w))
    return np.sort(np.concatenate([top, window], axis=1), axis=1)


def timed(f, repeats):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = f()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2], out


def main():
    d = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/kvscope-policybench")
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    colsum, attn = np.load(d / "colsum.npy"), np.load(d / "attn.npy")
    k, v, text = np.load(d / "k.npy"), np.load(d / "v.npy"), np.load(d / "text.npy").astype(bool)
    sw = json.loads((d / "swift_times.json").read_text())
    P = colsum.shape[1]
    C = int(P * sw["budget"])
    r = int(C * 0.5)
    hh = C - r
    t_lookm, (kept, keys, values) = timed(lambda: lookm(colsum, text, k, v, hh, r), repeats)
    t_snap, skept = timed(lambda: snapkv(attn, C), repeats)
    ok_kept = np.array_equal(kept, np.load(d / "swift_lookm_kept.npy"))
    dk = np.abs(keys - np.load(d / "swift_lookm_keys.npy")).max()
    dv = np.abs(values - np.load(d / "swift_lookm_values.npy")).max()
    ok_snap = np.array_equal(skept, np.load(d / "swift_snapkv_kept.npy"))
    print(f"numpy  lookm    median {t_lookm:8.4f} s   swift {sw['lookm']:8.4f} s   speed-up ×{t_lookm / sw['lookm']:.1f}")
    print(f"numpy  snapkv   median {t_snap:8.4f} s   swift {sw['snapkv']:8.4f} s   speed-up ×{t_snap / sw['snapkv']:.1f}")
    print(f"agreement: lookm kept {'equal' if ok_kept else 'DIFFER'}, keys Δ {dk:.2e}, values Δ {dv:.2e}; snapkv kept {'equal' if ok_snap else 'DIFFER'}")
    if not (ok_kept and ok_snap and dk <= 1e-4 and dv <= 1e-4):
        sys.exit(1)


if __name__ == "__main__":
    main()

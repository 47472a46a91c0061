#!/usr/bin/env python3
"""NumPy reference of `kvscope sweep` for the benchmark: the same policies' selection
(full, streaming, h2o, h2o-sinks, snapkv, tova, knorm, oracle) at the same budgets, and the same
metrics (attention/modality/top-k recall, output error and cosine from q, k, v, the eviction
estimate, kept counts, cache bytes, per-modality and per-image retention), per layer, in float64,
vectorised (batched matmuls for the outputs). Reads the attn-trace folder directly (safetensors
parsed by hand: 8-byte header length + JSON + raw little-endian data).

Usage: sweep_numpy.py TRACE_DIR [--budgets 0.05,0.1,...] [--out results.csv]
Prints elapsed seconds and peak RSS (MiB).
"""
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

DT = {"F16": np.float16, "F32": np.float32, "F64": np.float64, "BF16": None, "I64": np.int64}


def load_safetensors(path):
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, h in header.items():
        if name == "__metadata__":
            continue
        a, b = h["data_offsets"]
        out[name] = np.frombuffer(raw, dtype=DT[h["dtype"]], count=(b - a) // np.dtype(DT[h["dtype"]]).itemsize,
                                  offset=8 + n + a).reshape(h["shape"]).astype(np.float64)
    return out


def topk_mask(scores, k, candidates):
    """Boolean mask [G, P] of the top-k candidates per row (stable: ties to the lowest position)."""
    G, P = scores.shape
    mask = np.zeros((G, P), bool)
    if k <= 0:
        return mask
    s = np.where(candidates, scores, -np.inf)
    idx = np.argsort(-s, axis=1, kind="stable")[:, :k]
    np.put_along_axis(mask, idx, True, axis=1)
    return mask


def main():
    args = sys.argv[1:]
    trace = Path(args[0])
    budgets = [0.05, 0.1, 0.2, 0.3, 0.5]
    if "--budgets" in args:
        budgets = [float(x) for x in args[args.index("--budgets") + 1].split(",")]
    meta = json.loads((trace / "trace.json").read_text())
    m = meta["model"]
    H, G, D = m["num_heads"], m["num_kv_heads"], m["head_dim"]
    kvmap = np.array(m["kv_head_of_query_head"])
    scale = m.get("attn_scale") or 1 / np.sqrt(D)
    T, P = meta["seq_len"], meta["prefill_len"]
    qs, qe = meta["query_rows"]["start"], meta["query_rows"]["stop"]
    L = m["num_layers"]
    modality = np.zeros(T, int)
    images = []
    for s in meta.get("spans", meta.get("images", [])):
        pass
    tk = meta.get("tokens", {}).get("modality") or meta.get("token_modality")
    if tk is not None:
        modality = np.array(tk)
    for im in meta.get("images", []):
        a, b = im["start"], im["stop"]
        images.append((a, b))
    mods = sorted(set(modality[:P].tolist()))
    rows = np.arange(max(P, qs), qe)
    R = len(rows)
    policies = ["full", "streaming", "h2o", "h2o-sinks", "snapkv", "tova", "knorm", "oracle"]
    t0 = time.perf_counter()
    results = []
    causal = (np.arange(T)[None, :] <= rows[:, None])                      # [R, T]
    for layer in range(L):
        t = load_safetensors(trace / f"layer_{layer:03d}.safetensors")
        A = t["attn"][:, rows - qs, :] * causal                           # [H, R, T]
        q = t["q"][:, rows - qs, :]
        k, v = t["k"], t["v"]
        kh, vh = k[kvmap], v[kvmap]                                        # [H, T, D]
        total = A.sum(-1)
        tailA = A[:, :, P:].sum(-1)
        kk = min(16, P)
        topidx = np.argsort(-A[:, :, :P], axis=-1, kind="stable")[:, :, :kk]
        logits = np.where(causal, scale * np.matmul(q, kh.transpose(0, 2, 1)), -np.inf)
        w = np.exp(logits - logits.max(-1, keepdims=True))
        Z = w.sum(-1)
        o = np.matmul(w, vh) / Z[..., None]
        tailNum, tailZ = np.matmul(w[:, :, P:], vh[:, P:]), w[:, :, P:].sum(-1)
        oA = np.matmul(A, vh) / total[..., None]
        tailNumA = np.matmul(A[:, :, P:], vh[:, P:])
        colsum = t["attn_colsum"][:, :P]
        win = t["attn"][:, P - 32 - qs:P - qs, :P]                           # SnapKV window rows
        knorm = np.linalg.norm(k[:, :P], axis=-1)
        oracle = (A[:, :, :P] / total[..., None]).sum(1)
        for b in budgets:
            C = int(P * b)
            r = int(C * 0.5)
            hh = C - r
            cand = np.zeros((G, P), bool)
            for pol in policies:
                if pol == "full" or P <= C:
                    mask = np.ones((G, P), bool)
                elif pol == "streaming":
                    mask = np.zeros((G, P), bool)
                    mask[:, :4] = True
                    mask[:, P - (C - 4):] = True
                elif pol in ("h2o", "h2o-sinks"):
                    s = np.zeros((G, P))
                    np.add.at(s, kvmap, colsum)
                    if pol == "h2o-sinks":
                        s[:, :4] = np.inf
                    c = np.zeros((G, P), bool)
                    c[:, :P - r] = True
                    mask = topk_mask(s, hh, c)
                    mask[:, P - r:] = True
                elif pol == "snapkv":
                    wl = 32
                    if C <= wl:
                        mask = np.zeros((G, P), bool)
                        mask[:, P - C:] = True
                    else:
                        u = win[:, :, :P - wl].sum(1)
                        pad = np.pad(u, ((0, 0), (3, 3)), constant_values=-np.inf)
                        pooled = np.max(np.lib.stride_tricks.sliding_window_view(pad, 7, axis=1), -1)
                        s = np.zeros((G, P - wl))
                        np.add.at(s, kvmap, pooled)
                        c = np.ones((G, P), bool)
                        full = np.full((G, P), -np.inf)
                        full[:, :P - wl] = s
                        c[:, P - wl:] = False
                        mask = topk_mask(full, C - wl, c)
                        mask[:, P - wl:] = True
                elif pol == "tova":
                    s = np.broadcast_to(t["attn"][:, P - 1 - qs, :P].mean(0), (G, P))
                    mask = topk_mask(s, C, np.ones((G, P), bool))
                elif pol == "knorm":
                    mask = topk_mask(-knorm, C, np.ones((G, P), bool))
                elif pol == "oracle":
                    s = np.zeros((G, P))
                    np.add.at(s, kvmap, oracle)
                    mask = topk_mask(s, C, np.ones((G, P), bool))
                mh = mask[kvmap].astype(np.float64)                        # [H, P]
                kept = (A[:, :, :P] * mh[:, None, :]).sum(-1)
                recall = ((kept + tailA) / total).mean()
                modrec = {mo: ((A[:, :, :P] * (mh * (modality[:P] == mo))[:, None, :]).sum(-1) /
                               (A[:, :, :P] * (modality[:P] == mo)).sum(-1)).mean() for mo in mods}
                hits = np.take_along_axis(np.broadcast_to(mh[:, None, :], A[:, :, :P].shape), topidx, -1).sum(-1) / kk
                wk = w[:, :, :P] * mh[:, None, :]
                op = (np.matmul(wk, vh[:, :P]) + tailNum) / (wk.sum(-1) + tailZ)[..., None]
                err = (np.linalg.norm(o - op, axis=-1) / np.linalg.norm(o, axis=-1)).mean()
                cos = ((o * op).sum(-1) / (np.linalg.norm(o, axis=-1) * np.linalg.norm(op, axis=-1))).mean()
                Ak = A[:, :, :P] * mh[:, None, :]
                opA = (np.matmul(Ak, vh[:, :P]) + tailNumA) / (kept + tailA)[..., None]
                errA = (np.linalg.norm(oA - opA, axis=-1) / np.linalg.norm(oA, axis=-1)).mean()
                keptn = mask.sum(1)
                ret = {mo: (mask[:, modality[:P] == mo].sum(1) / (modality[:P] == mo).sum()).mean() for mo in mods}
                imret = [mask[:, a:bb].mean() for a, bb in images]
                results.append((layer, pol, b, recall, hits.mean(), err, cos, errA, keptn.mean(), keptn.sum() * D * 2 * 2,
                                modrec, ret, imret))
    elapsed = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if "--out" in args:
        with open(args[args.index("--out") + 1], "w") as f:
            f.write("layer,policy,budget,attention_recall,topk_recall,output_error,output_cosine,output_error_evict\n")
            for x in results:
                f.write(",".join(str(y) for y in x[:8]) + "\n")
    print(f"numpy: {len(results)} (layer, policy, budget) cells in {elapsed:.2f} s, peak RSS {peak:.0f} MiB")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""NumPy reference of `kvscope sweep` for the benchmark: the same policies' selection
(full, streaming, h2o, h2o-sinks, snapkv, tova, knorm, oracle; or, with --policies, the LOOK-M
family lookm, lookm-avg, lookm-weighted, text-prior in code fidelity: text prior + the pivotal,
averaged (rank-shared filter, rank-mismatched sources) and weighted merges) at the same budgets,
and the same
metrics (attention/modality/top-k recall, output error and cosine from q, k, v, the eviction
estimate, kept counts, cache bytes, per-modality and per-image retention), per layer, in float64,
vectorised (batched matmuls for the outputs). Reads the attn-trace folder directly (safetensors
parsed by hand: 8-byte header length + JSON + raw little-endian data).

Usage: sweep_numpy.py TRACE_DIR [--budgets 0.05,0.1,...] [--policies a,b,...] [--out results.csv]
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


LOOKM_FAMILY = ("lookm", "lookm-avg", "lookm-weighted", "text-prior")


def text_prior(s, text, hh, r):
    """Official text prior (code fidelity) per KV head: mask [G, P] of kept positions."""
    G, P = s.shape
    m = s - 65516.0 * (~text)[None, :]
    m[:, P - r:] -= 65516.0
    top = np.argsort(-m[:, :P - r], axis=1, kind="stable")[:, :hh]
    np.put_along_axis(m, top, 0.0, axis=1)
    m[:, P - r:] = 0.0
    return m >= 0


def merged_kv(mask, k, v, strategies):
    """The merges of LOOK-M on the kept mask [G, P]: per strategy, K' and V' as [G, P, D] (kept
    positions hold their slot's merged key/value; evicted ones are masked by the caller).
    One cosine search serves every strategy. Code fidelity: the averaged/weighted filter is
    mu >= mean mu over the layer, shared by evicted rank across heads; averaged sources are the
    j-th evicted token for the j-th filtered target."""
    G, P, D = k.shape
    nrm = np.linalg.norm(k, axis=-1, keepdims=True)
    kn = np.where(nrm > 0, k / np.where(nrm > 0, nrm, 1), 0.0)
    assign = []
    for g in range(G):
        kept, ev = np.nonzero(mask[g])[0], np.nonzero(~mask[g])[0]
        sim = kn[g, ev] @ kn[g, kept].T
        t = sim.argmax(axis=1)
        assign.append((kept, ev, t, sim[np.arange(len(ev)), t]))
    mus = np.concatenate([a[3] for a in assign])
    threshold = mus.mean() if len(mus) else 0.0
    ragged = len({len(a[1]) for a in assign}) > 1
    if not ragged and len(assign[0][1]):
        shared = np.mean([a[3] for a in assign], axis=0) >= threshold
    out = {}
    for strat in strategies:
        K2, V2 = k.copy(), v.copy()
        for g, (kept, ev, t, mu) in enumerate(assign):
            if len(ev) == 0:
                continue
            if strat == "pivotal":
                src, slot, w, piv = ev, t, np.full(len(ev), 0.5), 0.5
            else:
                f = (mu >= threshold) if ragged else shared
                fi = np.nonzero(f)[0]
                slot = t[fi]
                if strat == "average":
                    src, w, piv = (ev[:len(fi)] if not ragged else ev[fi]), np.ones(len(fi)), 0.0
                else:
                    src, w, piv = ev[fi], mu[fi], 0.0
            cnt = np.bincount(slot, minlength=len(kept)).astype(np.float64)[:, None]
            for X, X2 in ((k, K2), (v, V2)):
                xk = X[g, kept]
                acc = np.zeros_like(xk)
                np.add.at(acc, slot, w[:, None] * X[g, src] + piv * xk[slot])
                X2[g, kept] = (xk + acc) / (1 + cnt)
        out[strat] = (K2, V2)
    return out


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
    if "--policies" in args:
        policies = args[args.index("--policies") + 1].split(",")
    text = modality[:P] == 0
    t0 = time.perf_counter()
    results = []
    # The multiply-adds the computation must do (for the benchmark's floor): the full outputs of the
    # evaluation rows (logits and weighted sum), each cell's weighted sum over its kept slots (merging
    # cells also their logits), and one evicted x kept cosine search per distinct kept set of a head.
    macs = 0.0
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
        macs += 2.0 * H * R * T * D
        searched = set()
        for b in budgets:
            C = int(P * b)
            r = int(C * 0.5)
            hh = C - r
            cand = np.zeros((G, P), bool)
            merged = {}
            if any(p in LOOKM_FAMILY for p in policies) and P > C:
                s = np.zeros((G, P))
                np.add.at(s, kvmap, colsum)
                tp = text_prior(s, text, hh, r)
                names = {"lookm": "pivotal", "lookm-avg": "average", "lookm-weighted": "weighted"}
                wanted = [p for p in names if p in policies]
                kv = merged_kv(tp, k[:, :P], v[:, :P], [names[p] for p in wanted])
                merged = {p: kv[names[p]] for p in wanted}
                for g in range(G):
                    key = (g, tp[g].tobytes())
                    if wanted and key not in searched:
                        searched.add(key)
                        macs += float(tp[g].sum()) * float((~tp[g]).sum()) * D
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
                elif pol in LOOKM_FAMILY:
                    mask = tp
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
                if pol in merged:
                    K2, V2 = merged[pol]
                    lg = np.where(mh[:, None, :] > 0, scale * np.matmul(q, K2[kvmap].transpose(0, 2, 1)), -np.inf)
                    lg = np.concatenate([lg, logits[:, :, P:]], axis=-1)
                    wm = np.exp(lg - lg.max(-1, keepdims=True))
                    op = (np.matmul(wm[:, :, :P], V2[kvmap]) + np.matmul(wm[:, :, P:], vh[:, P:])) / wm.sum(-1)[..., None]
                else:
                    wk = w[:, :, :P] * mh[:, None, :]
                    op = (np.matmul(wk, vh[:, :P]) + tailNum) / (wk.sum(-1) + tailZ)[..., None]
                err = (np.linalg.norm(o - op, axis=-1) / np.linalg.norm(o, axis=-1)).mean()
                cos = ((o * op).sum(-1) / (np.linalg.norm(o, axis=-1) * np.linalg.norm(op, axis=-1))).mean()
                Ak = A[:, :, :P] * mh[:, None, :]
                opA = (np.matmul(Ak, vh[:, :P]) + tailNumA) / (kept + tailA)[..., None]
                errA = (np.linalg.norm(oA - opA, axis=-1) / np.linalg.norm(oA, axis=-1)).mean() if pol not in merged else np.nan
                keptn = mask.sum(1)
                macs += (2.0 if pol in merged else 1.0) * R * D * float(mh.sum())
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
    if "--macs" in args:
        Path(args[args.index("--macs") + 1]).write_text(f"{macs:.0f}\n")
    print(f"numpy: {len(results)} (layer, policy, budget) cells in {elapsed:.2f} s, peak RSS {peak:.0f} MiB")


if __name__ == "__main__":
    main()

"""Reference outputs for `kvscope simulate --evict-per-step` from H2O's own code.

Feeds an attn-trace's recorded rows, step by step, to `H2OKVCache_LayerWise` of H2O's reference
implementation (FMInference/H2O, h2o_hf/utils_real_drop/modify_llama.py; give your checkout's file
with --reference: only that class is loaded from it, nothing of it is copied here) and writes, per
layer, attention_recall at each generated step t: the mean over rows P … P + t − 1 of each row's
recorded attention on the cache the reference holds (plus the row's own token), over query heads.

The reference is per attention head, without GQA: KV head g's score is the sum over its query heads
(`kvscope --gqa sum`). Its prefill step gets the trace's attn_colsum; each decode step the row's
recorded attention on the cached positions and itself (the replay's "attention seen so far").

    pip install torch numpy
    python3 Scripts/h2o-decode-reference.py --reference path/to/modify_llama.py \
        Examples/traces/smollm2-pseudoimg2x64-gen16-w24 --layers 0,7 --budget 0.2 \
        -o Tests/kvscopeTests/Fixtures/h2o-decode-reference.json
"""
import argparse
import json
import os
import struct

import numpy as np
import torch


def safetensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, v in header.items():
        if name == "__metadata__":
            continue
        dtype = {"F32": np.float32, "F16": np.float16, "F64": np.float64}[v["dtype"]]
        a, b = v["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + a: 8 + n + b], dtype=dtype).reshape(v["shape"]).astype(np.float64)
    return out


def reference_class(path):
    src = open(path).read()
    start = src.index("class H2OKVCache_LayerWise")
    end = src.index("\nclass ", start + 1)
    scope = {"torch": torch}
    exec(src[start:end], scope)
    return scope["H2OKVCache_LayerWise"]


def layer_series(trace, meta, layer, budget, cache_class):
    T, P, q0 = meta["seq_len"], meta["prefill_len"], meta["query_rows"]["start"]
    gmap = meta["model"]["kv_head_of_query_head"]
    G = max(gmap) + 1
    t = safetensors(f"{trace}/layer_{layer:03d}.safetensors")
    A, colsum = t["attn"], t["attn_colsum"]
    H = A.shape[0]
    C = int(P * budget)
    r = int(C * 0.5)
    cache = cache_class(hh_size=C - r, recent_size=r)

    def per_kv(x):
        out = np.zeros((G, x.shape[1]))
        for h in range(H):
            out[gmap[h]] += x[h]
        return out

    # Positions ride in the "keys" so that the reference's own gathering returns the kept positions.
    def call(cols, scores):
        pos = torch.tensor(cols, dtype=torch.float64).view(1, G, -1, 1)
        kv = cache((pos, pos), torch.tensor(scores).view(1, G, 1, -1))
        return kv[0][0, :, :, 0].long().tolist()

    positions = call([list(range(P))] * G, per_kv(colsum[:, :P]))
    sums, series = np.zeros(H), []
    for s, i in enumerate(range(P, T)):
        row = A[:, i - q0, :]
        for h in range(H):
            visible = positions[gmap[h]] + [i]
            sums[h] += row[h, visible].sum() / row[h, : i + 1].sum()
        series.append(float(sums.mean() / (s + 1)))
        cols = [p + [i] for p in positions]
        new = np.zeros((G, len(cols[0])))
        for h in range(H):
            new[gmap[h]] += row[h, cols[gmap[h]]]
        positions = call(cols, new)
    return series


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("trace")
    ap.add_argument("--reference", required=True, help="H2O's h2o_hf/utils_real_drop/modify_llama.py")
    ap.add_argument("--layers", default="0")
    ap.add_argument("--budget", type=float, default=0.2)
    ap.add_argument("-o", "--output", required=True)
    a = ap.parse_args()
    meta = json.load(open(f"{a.trace}/trace.json"))
    cls = reference_class(a.reference)
    layers = [int(x) for x in a.layers.split(",")]
    doc = {"trace": os.path.basename(a.trace.rstrip("/")), "budget": a.budget, "gqa": "sum",
           "source": "FMInference/H2O h2o_hf/utils_real_drop/modify_llama.py, H2OKVCache_LayerWise",
           "attention_recall": {str(l): layer_series(a.trace, meta, l, a.budget, cls) for l in layers}}
    with open(a.output, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""End-to-end `.npz` benchmark: one LLaVA-geometry layer (32 heads, P = 2,400, three 576-token
images, D = 128) as a bare `.npz` (np.savez, stored members): attention [H, P, P] float32 (the
causal softmax of q·kᵀ/√D), k, v, q [H, P, D] float16, token_kind [P]. Each side reads the file,
compresses the layer at hh = recent = 0.1 and writes the compressed K/V.

    e2e_npz.py make OUT.npz
    e2e_npz.py numpy OUT.npz OUTDIR                 NumPy lookm (text prior + pivotal merge)
    e2e_npz.py official OUT.npz OUTDIR POLICY       the official LOOK-M cache class, run from the
                                                    checkout in $LOOKM_SRC with torch on CPU

Each timing command prints `seconds=…` (the whole run: reading the archive, the policy, writing).
The official code is not part of KVScope: its class definitions are read from the user's checkout
and executed as they are (nothing of it is copied here).
"""
import ast
import io
import math
import os
import sys
import time
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from policies_numpy import lookm  # noqa: E402  (text prior + pivotal merge, float64)

H, P, D, N_IMG, TPI, PREFIX, GAP = 32, 2400, 128, 3, 576, 35, 10


def spans():
    return [(PREFIX + i * (TPI + GAP), PREFIX + i * (TPI + GAP) + TPI) for i in range(N_IMG)]


def make(out):
    rng = np.random.default_rng(2024)
    kind = np.zeros(P, np.int32)
    for i, (a, b) in enumerate(spans()):
        kind[a:b] = i + 1
    k = rng.standard_normal((H, P, D), dtype=np.float32)
    q = rng.standard_normal((H, P, D), dtype=np.float32)
    v = rng.standard_normal((H, P, D), dtype=np.float32)
    anchor = rng.standard_normal((H, 1, D), dtype=np.float32)
    k[:, :4] += 2.0 * anchor
    k[:, ::17] += 1.5 * anchor
    q += 0.5 * anchor
    for i, (a, b) in enumerate(spans()):
        k[:, a:b] += 0.8 * rng.standard_normal((H, 1, D), dtype=np.float32)
    k, q, v = (x.astype(np.float16) for x in (k, q, v))
    attn = np.empty((H, P, P), np.float32)
    causal = np.tril(np.ones((P, P), bool))
    for h in range(H):
        s = (q[h].astype(np.float32) @ k[h].astype(np.float32).T) / math.sqrt(D)
        s[~causal] = -np.inf
        s -= s.max(-1, keepdims=True)
        e = np.exp(s)
        attn[h] = e / e.sum(-1, keepdims=True)
    np.savez(out, attn=attn, k=k, v=v, q=q, token_kind=kind)


def official_classes(src):
    """The official cache classes, defined from the checkout's modify_llama.py as published."""
    import torch
    import torch.nn.functional as F
    from torch import nn
    path = Path(src) / "LLaVA-mix_merge_v1/llava/model/kv_token_merge/modify_llama.py"
    text = path.read_text()
    tree = ast.parse(text)
    wanted = {"TextPivotMerge_LayerWise", "H2OKVCache_LayerWise", "PoolingKVCache_LayerWise"}
    ns = {"torch": torch, "nn": nn, "F": F, "math": math}
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name in wanted:
            exec(compile(ast.Module([node], []), str(path), "exec"), ns)
    missing = wanted - ns.keys()
    if missing:
        sys.exit(f"e2e_npz: {path}: no class {', '.join(sorted(missing))}")
    return ns


def main():
    cmd, npz = sys.argv[1], sys.argv[2]
    if cmd == "make":
        make(npz)
        return
    outdir = Path(sys.argv[3])
    outdir.mkdir(parents=True, exist_ok=True)
    hh, r = int(P * 0.1), int(P * 0.1)
    if cmd == "numpy":
        t0 = time.perf_counter()
        z = np.load(npz)
        attn, k, v, kind = z["attn"], z["k"], z["v"], z["token_kind"]
        _, keys, values = lookm(attn.sum(axis=1, dtype=np.float64), kind == 0, k, v, hh, r)
        np.savez(outdir / "cache.npz", k=keys.astype(np.float32), v=values.astype(np.float32))
        print(f"seconds={time.perf_counter() - t0:.4f}")
        return
    if cmd == "official":
        policy = sys.argv[4]
        src = os.environ.get("LOOKM_SRC")
        if not src:
            sys.exit("e2e_npz: set LOOKM_SRC to a checkout of the official LOOK-M code")
        import torch
        torch.set_num_threads(os.cpu_count() or 1)
        ns = official_classes(src)
        t0 = time.perf_counter()
        z = np.load(npz)
        attn = torch.from_numpy(z["attn"])[None]
        k = torch.from_numpy(z["k"].astype(np.float32))[None]
        v = torch.from_numpy(z["v"].astype(np.float32))[None]
        with redirect_stdout(io.StringIO()):
            if policy == "lookm":
                c = ns["TextPivotMerge_LayerWise"](hh_ratio=0.1, recent_ratio=0.1)
                c.image_position = torch.tensor([a - (TPI - 1) * i for i, (a, _) in enumerate(spans())])
                kc, vc = c((k, v), attn)
            elif policy == "h2o":
                c = ns["H2OKVCache_LayerWise"](hh_ratio=0.1, recent_ratio=0.1)
                kc, vc = c((k, v), attn)
            elif policy == "snapkv-lookm":
                q = torch.from_numpy(z["q"].astype(np.float32))[None]
                c = ns["PoolingKVCache_LayerWise"](hh_ratio=0.1, recent_ratio=0.1, kernel_size=5, pooling="avgpool")
                kc, vc = c((k, v), q, attn)
            else:
                sys.exit(f"e2e_npz: unknown policy {policy}")
        np.savez(outdir / "cache.npz", k=kc[0].numpy(), v=vc[0].numpy())
        print(f"seconds={time.perf_counter() - t0:.4f}")
        return
    sys.exit(f"e2e_npz: unknown command {cmd}")


if __name__ == "__main__":
    main()

"""Makes the Ada-KV reference fixtures: the two reference codes run on CPU on small synthetic layers.

    python make_adakv_fixtures.py --adakv CHECKOUT_OF_FFY0_AdaKV --kvpress CHECKOUT_OF_NVIDIA_kvpress [--out DIR]

Needs torch, numpy and transformers (kvpress's press modules import it). Nothing of either
reference is copied here: this script imports, from the given checkouts,

* the Ada-KV authors' `AdaptiveSnapKVCluster` (`adaptive_snapkv/monkeypatch/snapkv_utils.py`) and
  calls its `update_kv` on query/key/value tensors (the `flash_attn` import of that file is given
  an empty stand-in module: `update_kv` never calls it);
* kvpress's `AdaKVPress` over `SnapKVPress` (`kvpress/presses/`, loaded without the package's
  `__init__`, which pulls in the whole pipeline) and calls its `compress` with the attention given.

Inputs are exact in float32 and their products exact in float64: query and key entries are
multiples of 1/16 (head dim 16, so the logits q·k/4 are exact), so both references and KVScope see
bit-identical logits; the attention stored is the references' own float32 softmax, widened. Each
run records the kept positions per head (recovered from a value tensor whose first column is the
position), the reference's scores and the smallest score gap at each selection boundary.

Writes `<case>.npz` (stored members) and `manifest.json` into --out (default: beside this file).
"""
import argparse
import hashlib
import importlib.util
import json
import math
import os
import sys
import types
import zipfile

import numpy as np
import torch


def load_file(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def load_references(adakv_root, kvpress_root):
    pkg = types.ModuleType("kvpress")
    pkg.__path__ = [os.path.join(kvpress_root, "kvpress")]
    sys.modules["kvpress"] = pkg
    presses = types.ModuleType("kvpress.presses")
    presses.__path__ = [os.path.join(kvpress_root, "kvpress/presses")]
    sys.modules["kvpress.presses"] = presses
    import kvpress.presses.adakv_press as adakv_press  # noqa: E402
    import kvpress.presses.snapkv_press as snapkv_press  # noqa: E402
    # The stand-in exists only while the authors' file loads (transformers probes for flash_attn).
    sys.modules["flash_attn"] = types.SimpleNamespace(flash_attn_func=None)
    authors_path = os.path.join(adakv_root, "adaptive_snapkv/monkeypatch/snapkv_utils.py")
    try:
        authors = load_file("adakv_snapkv_utils", authors_path)
    finally:
        del sys.modules["flash_attn"]
    files = {
        "authors": authors_path,
        "kvpress_adakv": os.path.join(kvpress_root, "kvpress/presses/adakv_press.py"),
        "kvpress_snapkv": os.path.join(kvpress_root, "kvpress/presses/snapkv_press.py"),
    }
    sha = {k: hashlib.sha256(open(v, "rb").read()).hexdigest() for k, v in files.items()}
    return authors.AdaptiveSnapKVCluster, adakv_press.AdaKVPress, snapkv_press.SnapKVPress, sha


def make_inputs(seed, H, KVH, L, d, temps):
    rng = np.random.default_rng(seed)
    q = rng.integers(-8, 9, size=(H, L, d)) / 16.0
    k = rng.integers(-8, 9, size=(KVH, L, d)) / 16.0
    v = rng.integers(-8, 9, size=(KVH, L, d)) / 16.0
    q = q * np.array(temps, dtype=np.float64)[:, None, None]   # powers of two: still exact
    group = H // KVH
    k_rep = np.repeat(k, group, axis=0)
    logits = torch.from_numpy(np.einsum("hid,hjd->hij", q, k_rep) / math.sqrt(d))
    mask = torch.triu(torch.ones(L, L, dtype=torch.bool), diagonal=1)
    logits = logits.masked_fill(mask, float("-inf"))
    attn = torch.nn.functional.softmax(logits, dim=-1, dtype=torch.float32).to(torch.float64)
    return q, k, v, attn.numpy()


def position_values(KVH, L, d, dtype=torch.float64):
    """Values whose first column is the position: the kept positions read back from the output."""
    v = torch.zeros(1, KVH, L, d, dtype=dtype)
    v[..., 0] = torch.arange(L, dtype=dtype)
    return v


def boundary_gap(scores, kept, n):
    """Per head, min kept prefix score minus max evicted prefix score (0: a tie at the boundary)."""
    gaps = []
    for g, ks in enumerate(kept):
        pre = [j for j in ks if j < n]
        rest = [j for j in range(n) if j not in set(pre)]
        if pre and rest:
            gaps.append(float(min(scores[g][j] for j in pre) - max(scores[g][j] for j in rest)))
    return min(gaps) if gaps else None


def run_authors(Cluster, q, k, attn, *, budget, window, kernel, pooling, alpha, gqa_func):
    H, L, d = q.shape
    KVH = k.shape[0]
    gqa = KVH != H
    cluster = Cluster(window_size=window, kernel_size=kernel, pooling=pooling, base_capacity=budget, floor_alpha=alpha,
                      skip=0, normalize=None, layer_idx=0, num_hidden_layers=1, gqa_support=gqa,
                      num_key_value_groups=H // KVH, gqa_func=gqa_func if gqa else None)
    # float32: the code builds its mask with torch.full(…, finfo(dtype).min) in the default float32,
    # which overflows for float64 inputs. The logits are still exact (dyadic inputs).
    qt = torch.from_numpy(q).float()[None]
    kt = torch.from_numpy(k).float()[None]
    _, vout = cluster.update_kv(kt, qt, position_values(KVH, L, d, torch.float32))
    lens = cluster.head_lens.tolist()
    pos = vout[:, 0].round().long().tolist()
    kept, at = [], 0
    for n_h in lens:
        kept.append(pos[at:at + n_h])
        at += n_h
    # The reference's scores, and a check that the stored attention reproduces them.
    rep = torch.from_numpy(np.repeat(k, H // KVH, axis=0)).float()[None]
    scores = cluster.calcul_attn_sore(rep, qt)[0].double().numpy()
    u = attn[:, L - window:, :L - window].mean(axis=1)
    check = torch.from_numpy(u)[None]
    if gqa:
        check = check.view(1, KVH, H // KVH, -1)
        check = check.max(dim=-2).values if gqa_func == "max" else check.mean(dim=-2)
    pool = torch.nn.functional.max_pool1d if pooling == "maxpool" else torch.nn.functional.avg_pool1d
    check = pool(check, kernel_size=kernel, padding=kernel // 2, stride=1)[0].numpy()
    # The code averages and pools in float32: within float32 rounding of the float64 values.
    assert np.max(np.abs(check - scores) / np.maximum(np.abs(check), 1e-30)) <= 1e-6, "stored attention does not reproduce the authors' scores"
    return kept, scores


def run_kvpress(AdaKVPress, SnapKVPress, q, k, attn, *, compression_ratio, window, kernel, alpha):
    H, L, d = q.shape
    KVH = k.shape[0]
    config = types.SimpleNamespace(num_attention_heads=H, num_key_value_heads=KVH, _attn_implementation="sdpa")
    module = types.SimpleNamespace(config=config, head_dim=d)
    press = AdaKVPress(press=SnapKVPress(compression_ratio=compression_ratio, window_size=window, kernel_size=kernel),
                       alpha_safeguard=alpha)
    keys = torch.from_numpy(k)[None]
    values = position_values(KVH, L, d)
    att = torch.from_numpy(attn)[None]
    hidden = torch.zeros(1, L, 1, dtype=torch.float64)
    scores = press.press.score(module, hidden, keys, values, att, {})[0].numpy()
    press.compress(module, hidden, keys, values, att, {})
    _, heads, seqs = module.masked_key_indices
    pruned = [set() for _ in range(KVH)]
    for h, j in zip(heads.tolist(), seqs.tolist()):
        pruned[h].add(j)
    kept = [[j for j in range(L) if j not in pruned[g]] for g in range(KVH)]
    return kept, scores


CASES = [
    # name, seed, H, KVH, L, d, per-query-head temperature (powers of two)
    ("mha", 11, 4, 4, 80, 16, [0.5, 1, 2, 4]),
    ("gqa", 23, 8, 2, 96, 16, [4, 2, 1, 0.5, 0.5, 1, 1, 4]),
    ("gqa4", 37, 8, 4, 72, 16, [1, 4, 0.5, 2, 2, 0.5, 4, 1]),
]

# Authors' runs: (budgets C = base_capacity to try, window, kernel, pooling, alpha, gqa_func). The
# first budget whose selection cuts no tie is used: max pooling copies each local maximum over the
# kernel, and at a tie the code's order is torch.sort's, which on CPU is unspecified (it changes with
# the length). None stands for C = L (B = P − w), where the authors still compress.
AUTHORS = [
    (range(10, 80), 8, 7, "maxpool", 0.0, "mean"),
    (range(10, 80), 8, 7, "maxpool", 0.2, "mean"),
    (range(10, 80), 8, 7, "maxpool", 0.3, "mean"),
    (range(36, 80), 8, 7, "maxpool", 0.5, "mean"),
    (range(10, 80), 8, 7, "maxpool", 0.7, "mean"),
    (range(14, 80), 12, 7, "maxpool", 0.45, "max"),
    (range(30, 31), 8, 5, "avgpool", 0.35, "mean"),
    (range(24, 25), 8, 5, "avgpool", 0.3, "mean"),
    (range(40, 41), 8, 3, "avgpool", 0.5, "mean"),
    (None, 8, 5, "avgpool", 0.3, "mean"),
]

# kvpress runs: (compression_ratio, window, kernel, alpha)
KVPRESS = [
    (0.5, 8, 5, 0.0),
    (0.5, 8, 5, 0.2),
    (0.5, 4, 5, 0.6),     # the floor binds: ⌊0.6·C⌋ − 4 prefix positions per head
    (0.75, 8, 5, 0.25),
    (0.7, 16, 5, 0.2),    # ⌊α·C⌋ < w: no prefix floor
    (0.6, 4, 3, 0.9),
]


def write_npz(path, arrays):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        for key in sorted(arrays):
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            import io
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arrays[key]), version=(1, 0))
            z.writestr(info, buf.getvalue())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--adakv", required=True, help="checkout of FFY0/AdaKV")
    ap.add_argument("--kvpress", required=True, help="checkout of NVIDIA/kvpress")
    ap.add_argument("--adakv-commit", default="")
    ap.add_argument("--kvpress-commit", default="")
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    a = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    Cluster, AdaKVPress, SnapKVPress, sha = load_references(a.adakv, a.kvpress)
    manifest = {
        "sources": {
            "authors": {"repository": "FFY0/AdaKV", "commit": a.adakv_commit,
                        "path": "adaptive_snapkv/monkeypatch/snapkv_utils.py", "sha256": sha["authors"],
                        "entry": "AdaptiveSnapKVCluster.update_kv"},
            "kvpress": {"repository": "NVIDIA/kvpress", "commit": a.kvpress_commit,
                        "paths": ["kvpress/presses/adakv_press.py", "kvpress/presses/snapkv_press.py"],
                        "sha256": [sha["kvpress_adakv"], sha["kvpress_snapkv"]],
                        "entry": "AdaKVPress(SnapKVPress).compress with the attention given"},
        },
        "environment": {"python": sys.version.split()[0], "torch": torch.__version__, "numpy": np.__version__,
                        "device": "cpu", "dtype": "authors: float32 tensors (the code cannot run float64: its mask overflows), so its window mean and pooling are float32; kvpress: float64 attention given. Logits are exact in both; the attention is the float32 softmax, stored as float32"},
        "cases": [],
    }
    for name, seed, H, KVH, L, d, temps in CASES:
        q, k, v, attn = make_inputs(seed, H, KVH, L, d, temps)
        arrays = {"in_attention": attn.astype(np.float32), "in_queries": q.astype(np.float32),
                  "in_keys": k.astype(np.float32), "in_values": v.astype(np.float32)}
        assert np.array_equal(arrays["in_attention"].astype(np.float64), attn)
        runs = []
        for (budgets, w, kern, pool, alpha, gf) in AUTHORS:
            if KVH == H and gf == "max":
                gf = "mean"
            for C in ([L] if budgets is None else [b for b in budgets if b < L]):
                kept, scores = run_authors(Cluster, q, k, attn, budget=C, window=w, kernel=kern, pooling=pool, alpha=alpha, gqa_func=gf)
                gap = boundary_gap(scores, kept, L - w)
                if gap is None or gap > 0:
                    break
            else:
                print(f"{name}: every budget of {budgets} cuts a tie ({pool}, alpha {alpha}): run left out")
                continue
            run = f"authors_C{C}_w{w}_k{kern}_{pool}_a{alpha}_{gf}"
            runs.append({"run": run, "reference": "authors", "budget": C, "window": w, "kernel": kern, "pooling": pool,
                         "alpha": alpha, "gqa_func": gf, "kept_per_head": [len(x) for x in kept],
                         "min_gap": boundary_gap(scores, kept, L - w)})
            arrays[f"out__{run}__kept"] = np.array([j for x in kept for j in x], dtype=np.int64)
            arrays[f"out__{run}__counts"] = np.array([len(x) for x in kept], dtype=np.int64)
            arrays[f"out__{run}__scores"] = scores
        for (cr, w, kern, alpha) in KVPRESS:
            kept, scores = run_kvpress(AdaKVPress, SnapKVPress, q, k, attn, compression_ratio=cr, window=w, kernel=kern, alpha=alpha)
            assert (boundary_gap(scores, kept, L - w) or 1) > 0, f"{name}: kvpress cr {cr} cuts a tie"
            run = f"kvpress_cr{cr}_w{w}_k{kern}_a{alpha}"
            C = int(L * (1 - cr))
            runs.append({"run": run, "reference": "kvpress", "compression_ratio": cr, "budget": C, "window": w, "kernel": kern,
                         "pooling": "avgpool", "alpha": alpha, "gqa_func": "mean", "kept_per_head": [len(x) for x in kept],
                         "min_gap": boundary_gap(scores, kept, L - w)})
            arrays[f"out__{run}__kept"] = np.array([j for x in kept for j in x], dtype=np.int64)
            arrays[f"out__{run}__counts"] = np.array([len(x) for x in kept], dtype=np.int64)
            arrays[f"out__{run}__scores"] = scores
        path = os.path.join(a.out, name + ".npz")
        write_npz(path, arrays)
        manifest["cases"].append({"case": name, "seed": seed, "heads": H, "kv_heads": KVH, "seq_len": L, "head_dim": d,
                                  "query_temperatures": temps, "sha256": hashlib.sha256(open(path, "rb").read()).hexdigest(),
                                  "runs": runs})
    with open(os.path.join(a.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")
    print("wrote", len(CASES), "cases,", sum(len(c["runs"]) for c in manifest["cases"]), "runs")


if __name__ == "__main__":
    main()

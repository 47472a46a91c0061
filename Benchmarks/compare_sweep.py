#!/usr/bin/env python3
"""Compares the per-layer metrics of `kvscope sweep` (results.csv) with sweep_numpy.py --out."""
import sys

import pandas as pd

s = pd.read_csv(sys.argv[1])
n = pd.read_csv(sys.argv[2])
s = s[~s["all_layers"].astype(str).str.lower().eq("true") & s["head_index"].isna() & s["image"].isna()].copy()
s["layer"] = s["layer"].astype(int)
p = s.groupby(["layer", "policy", "budget", "metric"])["value"].first().unstack().reset_index()
m = p.merge(n, on=["layer", "policy", "budget"], suffixes=("_swift", "_numpy"))
print(f"compared {len(m)} (layer, policy, budget) cells")
worst_all = 0.0
for c in ["attention_recall", "topk_recall", "output_error", "output_cosine", "output_error_evict"]:
    if c + "_numpy" not in m or m[c + "_numpy"].isna().all():
        continue
    d = (m[c + "_numpy"] - m[c + "_swift"]).abs()
    if m[c + "_numpy"].notna().ne(m[c + "_swift"].notna()).any():
        sys.exit(f"  {c}: defined in one result and not the other")
    worst = m.loc[d.idxmax(), ["layer", "policy", "budget"]].tolist()
    print(f"  {c:20s} max |numpy − swift| = {d.max():.3g}  (at {worst})")
    worst_all = max(worst_all, d.max())
if len(m) == 0 or worst_all > 1e-6:
    sys.exit("compare_sweep: kvscope and numpy disagree (or nothing was compared)")

#!/usr/bin/env bash
# `make bench`: every benchmark, each compared in the same command with its NumPy / matplotlib
# (and, given a checkout of the official LOOK-M code in $LOOKM_SRC, official torch) counterpart,
# each with its floor (Benchmarks/floor.py). Run after `swift build -c release`. Timings belong
# here, never in tests. Ratios are measured within one command, so a machine that other jobs load
# slows both sides alike; absolute times are not comparable across runs.
set -euo pipefail
cd "$(dirname "$0")/.."
REL=.build/release
mkdir -p Output/bench
# Python side in a venv of its own: numpy, pandas, matplotlib (and a CPU torch for the official code).
VENV=.build/bench-venv
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV" 2>/dev/null || { echo "make bench: python3 -m venv failed (Debian: apt-get install python3-venv)" >&2; exit 2; }
fi
"$VENV/bin/python" -c "import numpy, pandas, matplotlib" 2>/dev/null || "$VENV/bin/pip" install -q numpy pandas matplotlib
if [ -n "${LOOKM_SRC:-}" ]; then
  [ -f "$LOOKM_SRC/LLaVA-mix_merge_v1/llava/model/kv_token_merge/modify_llama.py" ] \
    || { echo "make bench: LOOKM_SRC=$LOOKM_SRC has no LLaVA-mix_merge_v1/llava/model/kv_token_merge/modify_llama.py" >&2; exit 2; }
  "$VENV/bin/python" -c "import torch" 2>/dev/null || "$VENV/bin/pip" install -q 'torch==2.13.*'
fi
PY="$VENV/bin/python"
# NumPy and torch get the machine's own OpenBLAS/threading defaults in every benchmark command.
PYB="env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $PY"
MACHINE=Output/bench/machine.json
FLOOR="$PY Benchmarks/floor.py line $MACHINE"
ratio() { "$PY" -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.2f}')" "$1" "$2"; }

echo "== machine: read bandwidth and FMA peak (the floors below use them)"
$PYB Benchmarks/floor.py measure "$MACHINE"

echo "== policies: lookm and snapkv on a LLaVA-geometry layer (Swift vs NumPy)"
"$REL/policybench" Output/bench/policy --repeats 5
$PYB Benchmarks/policies_numpy.py Output/bench/policy 5
"$PY" - Output/bench/policy "$MACHINE" <<'PY'
import json, subprocess, sys
import numpy as np
d = sys.argv[1]
t = json.load(open(f"{d}/swift_times.json"))
H, P, D, W = int(t["H"]), int(t["P"]), int(t["D"]), int(t["window"])
C = np.load(f"{d}/swift_lookm_kept.npy").shape[1]
fl = [sys.executable, "Benchmarks/floor.py", "line", sys.argv[2]]
# lookm: reads K and V (f16) and the column sums; the cosine search is E x C x D per head.
subprocess.run(fl + ["floor of swift lookm", str(t["lookm"]), str(2 * H * P * D * 2 + H * P * 4), str(H * (P - C) * C * D)], check=True)
# snapkv: reads the window rows; sums and pooling, no multiply-adds to speak of.
subprocess.run(fl + ["floor of swift snapkv", str(t["snapkv"]), str(H * W * P * 4), "0"], check=True)
PY

echo "== heatmap: 4096×4096 attention map, log norm, to PNG (Swift vs matplotlib)"
s=$("$REL/plotbench" --size 4096 --repeat 3 --out Output/bench/heatmap.png | sed -n 's/^swift_seconds=//p')
m=$($PYB Benchmarks/heatmap_matplotlib.py --size 4096 --repeat 3 | sed -n 's/^matplotlib_seconds=//p')
echo "swift ${s}s  matplotlib ${m}s  ratio ×$(ratio "$m" "$s")"
$FLOOR "floor of the swift heatmap (reads the 4096² float32 map)" "$s" $((4096 * 4096 * 4)) 0

echo "== memory: reading every layer of a 32-layer × 32-head × 2,400-token trace"
bash Benchmarks/trace_memory.sh "$REL/kvscope"

echo "== end to end on a .npz: one LLaVA-geometry layer, attention [32, 2400, 2400] float32, hh = recent = 0.1"
bash Benchmarks/e2e_bench.sh "$REL/kvscope" "$PY" "$MACHINE"

echo "== sweep: 8 baseline policies × 5 budgets on the 32-layer LLaVA-geometry trace (Swift vs NumPy)"
bash Benchmarks/sweep_bench.sh "$REL/kvscope" "$PY" 32 full,streaming,h2o,h2o-sinks,snapkv,tova,knorm,oracle "$MACHINE"

for L in 8 32; do
  echo "== sweep: the LOOK-M family (lookm, lookm-avg, lookm-weighted, text-prior) × 5 budgets, $L-layer trace (Swift vs NumPy)"
  bash Benchmarks/sweep_bench.sh "$REL/kvscope" "$PY" $L lookm,lookm-avg,lookm-weighted,text-prior "$MACHINE"
  # One run of each is at the machine's mercy (its load moves a run by ±20 %): three alternating
  # pairs, and the median of the pairs' ratios.
  echo "-- the family against lookm alone × 5 budgets, $L layers: 3 alternating pairs of kvscope runs"
  pairs=()
  for i in 1 2 3; do
    fam=$(SWEEP_NUMPY=0 bash Benchmarks/sweep_bench.sh "$REL/kvscope" "$PY" $L lookm,lookm-avg,lookm-weighted,text-prior | sed -n 's/^swift_seconds=//p')
    one=$(SWEEP_NUMPY=0 bash Benchmarks/sweep_bench.sh "$REL/kvscope" "$PY" $L lookm | sed -n 's/^swift_seconds=//p')
    echo "   pair $i: family $fam s, lookm alone $one s"
    pairs+=("$fam" "$one")
  done
  "$PY" - "$L" "${pairs[@]}" <<'PY'
import statistics, sys
L, t = sys.argv[1], [float(x) for x in sys.argv[2:]]
fam, one = t[0::2], t[1::2]
r = sorted(f / o for f, o in zip(fam, one))
print(f"LOOK-M family / lookm alone ({L} layers) = {statistics.median(r):.2f}× (median of 3 pairs; range {r[0]:.2f}–{r[-1]:.2f}×; "
      f"family median {statistics.median(fam):.2f} s, lookm alone {statistics.median(one):.2f} s; target ≤ 1.5×)")
PY
done 2>&1

echo "== ratio grid: a 6 × 5 hh × recent grid of lookm vs a 5-budget lookm sweep, 32-layer LLaVA-geometry trace"
bash Benchmarks/ratio_bench.sh "$REL/kvscope"

#!/usr/bin/env bash
# `make bench`: every benchmark, each compared in the same command with its NumPy / matplotlib
# counterpart. Run after `swift build -c release`. Timings belong here, never in tests.
set -euo pipefail
cd "$(dirname "$0")/.."
REL=.build/release
mkdir -p Output/bench
# Python side: numpy (and matplotlib for the heatmap comparison), in a venv of their own.
VENV=Output/bench/.venv
if [ ! -x "$VENV/bin/python" ]; then python3 -m venv "$VENV" 2>/dev/null || python3 -m virtualenv "$VENV"; fi
"$VENV/bin/python" -c "import numpy, matplotlib" 2>/dev/null || "$VENV/bin/pip" install -q numpy matplotlib
PY="$VENV/bin/python"

echo "== policies: lookm and snapkv on a LLaVA-geometry layer (Swift vs NumPy)"
"$REL/policybench" Output/bench/policy --repeats 5
# Unset the OpenBLAS overrides for a fair NumPy (see the environment notes); they stay set elsewhere.
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$PY" Benchmarks/policies_numpy.py Output/bench/policy 5

echo "== heatmap: 4096×4096 attention map, log norm, to PNG (Swift vs matplotlib)"
s=$("$REL/plotbench" --size 4096 --repeat 3 --out Output/bench/heatmap.png | sed -n 's/^swift_seconds=//p')
m=$(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$PY" Benchmarks/heatmap_matplotlib.py --size 4096 --repeat 3 | sed -n 's/^matplotlib_seconds=//p')
echo "swift ${s}s  matplotlib ${m}s  ratio ×$(python3 -c "print(round($m/$s,1))")"

echo "== memory: reading every layer of a 32-layer × 32-head × 2,400-token trace"
bash Benchmarks/trace_memory.sh "$REL/kvscope"

if [ -f Benchmarks/sweep_bench.sh ]; then
  echo "== sweep: 8 policies × 5 budgets on a 32-layer LLaVA-geometry trace (Swift vs NumPy)"
  bash Benchmarks/sweep_bench.sh "$REL/kvscope" "$PY"
fi

echo "== ratio grid: a 6 × 5 hh × recent grid of lookm vs a 5-budget lookm sweep, 32-layer LLaVA-geometry trace"
bash Benchmarks/ratio_bench.sh "$REL/kvscope"

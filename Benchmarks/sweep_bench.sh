#!/usr/bin/env bash
# Times `kvscope sweep` (release) of POLICIES × 5 budgets on a LLaVA-geometry synthetic trace
# against the NumPy implementation of the same computation (Benchmarks/sweep_numpy.py), in the
# same command; prints both times, the ratio, peak RSS (also in layers' worth of the trace), the
# floor, and checks that they agree. Traces are synthesised once and cached under Output/bench/.
#
#     bash Benchmarks/sweep_bench.sh [kvscope] [python] [layers] [policies] [machine.json]
#
# Prints `swift_seconds=…` last, for run.sh's ratios. SWEEP_NUMPY=0 times kvscope alone.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-.build/release/kvscope}
PY=${2:-python3}
LAYERS=${3:-32}
POLICIES=${4:-full,streaming,h2o,h2o-sinks,snapkv,tova,knorm,oracle}
MACHINE=${5:-}
TRACE=Output/bench/llava-1.5-$LAYERS
BUDGETS=0.05,0.1,0.2,0.3,0.5
[ -x "$BIN" ] || swift build -c release --product kvscope
if [ ! -f "$TRACE/trace.json" ]; then
  echo "sweep_bench: synthesising $TRACE (once; about 5 s per layer)"
  mkdir -p Output/bench
  "$BIN" synth "$TRACE" --preset llava-1.5 --layers "$LAYERS" >/dev/null
fi
TAG=$(echo "$LAYERS-$POLICIES" | tr ',' '_')
OUT=Output/bench/sweep-$TAG
rm -rf "$OUT"
echo "sweep_bench: kvscope sweep, $POLICIES × $BUDGETS on $TRACE"
/usr/bin/time -f "%e %M" -o "$OUT.swift.time" "$BIN" sweep "$TRACE" --policies "$POLICIES" --budgets "$BUDGETS" \
  --metrics kept_tokens,kept_ratio,cache_bytes,attention_recall,recall_text,topk_recall,output_error,output_cosine,output_error_evict,retention_text,image_retention \
  --out "$OUT" >/dev/null
read -r ST SM < "$OUT.swift.time"
if [ "${SWEEP_NUMPY:-1}" = 0 ]; then # kvscope only (run.sh's lookm-alone baseline)
  echo "kvscope sweep: $ST s wall, peak RSS $((SM / 1024)) MiB"
  echo "swift_seconds=$ST"
  exit 0
fi
echo "sweep_bench: numpy reference"
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/time -f "%e %M" -o "$OUT.numpy.time" \
  "$PY" Benchmarks/sweep_numpy.py "$TRACE" --budgets "$BUDGETS" --policies "$POLICIES" --out "$OUT.numpy.csv" --macs "$OUT.macs" >/dev/null
read -r NT NM < "$OUT.numpy.time"
"$PY" Benchmarks/compare_sweep.py "$OUT/results.csv" "$OUT.numpy.csv"
BYTES=$(du -cb "$TRACE"/*.safetensors | tail -1 | cut -f1)
"$PY" - "$ST" "$SM" "$NT" "$NM" "$BYTES" "$LAYERS" <<'PY'
import sys
st, sm, nt, nm, nbytes, layers = float(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
layer = nbytes / layers / 1024
print(f"kvscope sweep: {st:.1f} s wall, peak RSS {sm / 1024:.0f} MiB = {sm / layer:.1f} layers' worth ({layer / 1024:.1f} MiB a layer)")
print(f"numpy:         {nt:.1f} s wall, peak RSS {nm / 1024:.0f} MiB")
print(f"ratio numpy / kvscope = {nt / st:.2f}×")
PY
if [ -n "$MACHINE" ]; then
  "$PY" Benchmarks/floor.py line "$MACHINE" "floor of the kvscope sweep" "$ST" "$BYTES" "$(cat "$OUT.macs")"
fi
echo "swift_seconds=$ST"

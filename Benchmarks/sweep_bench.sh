#!/usr/bin/env bash
# Times `kvscope sweep` (release) of 8 policies × 5 budgets on a 32-layer LLaVA-geometry synthetic
# trace against the NumPy implementation of the same computation (Benchmarks/sweep_numpy.py),
# in the same command; prints both times, the ratio, peak RSS, and checks that they agree.
# The trace is synthesised once and cached under Output/bench/ (gitignored).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${KVSCOPE_BIN:-.build/release/kvscope}
SCRATCH=${SWIFT_SCRATCH:-}
TRACE=Output/bench/llava-1.5-32
POLICIES=full,streaming,h2o,h2o-sinks,snapkv,tova,knorm,oracle
BUDGETS=0.05,0.1,0.2,0.3,0.5
[ -x "$BIN" ] || swift build -c release --product kvscope ${SCRATCH:+--scratch-path $SCRATCH}
if [ ! -f "$TRACE/trace.json" ]; then
  echo "sweep_bench: synthesising $TRACE (once; about 2 minutes)"
  mkdir -p Output/bench
  "$BIN" synth "$TRACE" --preset llava-1.5 >/dev/null
fi
OUT=Output/bench/sweep-swift
rm -rf "$OUT"
echo "sweep_bench: kvscope sweep, $POLICIES × $BUDGETS on $TRACE"
/usr/bin/time -f "%e %M" -o Output/bench/swift.time "$BIN" sweep "$TRACE" --policies "$POLICIES" --budgets "$BUDGETS" \
  --metrics kept_tokens,kept_ratio,cache_bytes,attention_recall,recall_text,topk_recall,output_error,output_cosine,output_error_evict,retention_text,image_retention \
  --out "$OUT" >/dev/null
read -r ST SM < Output/bench/swift.time
echo "sweep_bench: numpy reference"
/usr/bin/time -f "%e %M" -o Output/bench/numpy.time python3 Benchmarks/sweep_numpy.py "$TRACE" --budgets "$BUDGETS" --out Output/bench/numpy.csv
read -r NT NM < Output/bench/numpy.time
python3 Benchmarks/compare_sweep.py "$OUT/results.csv" Output/bench/numpy.csv
python3 - "$ST" "$SM" "$NT" "$NM" <<'PY'
import sys
st, sm, nt, nm = float(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
print(f"kvscope sweep: {st:.1f} s wall, peak RSS {sm / 1024:.0f} MiB")
print(f"numpy:         {nt:.1f} s wall, peak RSS {nm / 1024:.0f} MiB")
print(f"ratio numpy / kvscope = {nt / st:.2f}×")
PY

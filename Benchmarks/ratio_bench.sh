#!/usr/bin/env bash
# Times a 6 × 5 (hh_ratio × recent_ratio) grid of `lookm` against a 5-budget `lookm` sweep of the
# same 32-layer LLaVA-geometry synthetic trace (release build), in one run, and prints both times
# and their ratio. The work a policy's settings share (scores, merge assignments) is computed once
# per layer, so the 30-setting grid should cost well under 6× the 5-budget sweep.
#
#     bash Benchmarks/ratio_bench.sh [kvscope] [trace]     (default: the sweep bench's cached trace)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-.build/release/kvscope}
TRACE=${2:-Output/bench/llava-1.5-32}
[ -x "$BIN" ] || swift build -c release --product kvscope
if [ ! -f "$TRACE/trace.json" ]; then
  echo "ratio_bench: synthesising $TRACE (once; about 2 minutes)"
  mkdir -p "$(dirname "$TRACE")"
  "$BIN" synth "$TRACE" --preset llava-1.5 >/dev/null
fi
OUT=Output/bench/ratio
rm -rf "$OUT" && mkdir -p "$OUT"
METRICS=kept_ratio,attention_recall,recall_image,output_error
/usr/bin/time -f "%e" -o "$OUT/budgets.time" "$BIN" sweep "$TRACE" --policies lookm --budgets 0.05,0.1,0.2,0.3,0.5 \
  --metrics "$METRICS" --out "$OUT/budgets" >/dev/null
/usr/bin/time -f "%e" -o "$OUT/grid.time" "$BIN" explore "$TRACE" --policies lookm \
  --hh-ratio 0.02,0.05,0.1,0.15,0.2,0.3 --recent-ratio 0.02,0.05,0.1,0.2,0.3 --metrics "$METRICS" \
  --safe 'attention_recall>=0.95' --out "$OUT/grid" >/dev/null
python3 - "$(cat "$OUT/budgets.time")" "$(cat "$OUT/grid.time")" <<'PY'
import sys
b, g = float(sys.argv[1]), float(sys.argv[2])
print(f"lookm 5-budget sweep: {b:.1f} s; lookm 6 x 5 ratio grid (explore, with safe.csv and maps): {g:.1f} s; ratio grid / sweep = {g / b:.2f}x (target <= 3x)")
PY

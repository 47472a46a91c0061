#!/usr/bin/env bash
# End to end on a bare .npz (Benchmarks/e2e_npz.py makes it once, cached under Output/bench/): read
# the archive, compress the layer at hh = recent = 0.1, write the compressed cache. `kvscope
# simulate --save-cache` (release) for lookm, h2o and snapkv-lookm; NumPy for lookm; and, when
# $LOOKM_SRC points to a checkout of the official LOOK-M code, its cache classes with torch on CPU.
# Median of 3 whole runs each, all in this one command; prints the ratios and the floors.
#
#     bash Benchmarks/e2e_bench.sh [kvscope] [python] [machine.json]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-.build/release/kvscope}
PY=${2:-python3}
MACHINE=${3:-}
PYB="env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $PY"
NPZ=Output/bench/llava-layer.npz
OUT=Output/bench/e2e
if [ ! -f "$NPZ" ]; then
  echo "e2e_bench: writing $NPZ (once)"
  $PYB Benchmarks/e2e_npz.py make "$NPZ"
fi
mkdir -p "$OUT"
median3() { # median wall seconds of a command run 3 times
  local ts=()
  for _ in 1 2 3; do
    local t0 t1; t0=$(date +%s.%N)
    # A failing run (say, torch missing for the official code) stops the bench instead of being timed.
    "$@" >/dev/null || { echo "e2e_bench: failed: $*" >&2; exit 2; }
    t1=$(date +%s.%N)
    ts+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')")
  done
  printf '%s\n' "${ts[@]}" | sort -g | sed -n 2p
}
kv() { rm -rf "$OUT/kv-$1"; "$BIN" simulate "$NPZ" --attn attn --keys k --values v --queries q --token-kind token_kind \
  --policy "$1" --hh-ratio 0.1 --recent-ratio 0.1 --save-cache "$OUT/kv-$1"; }
declare -A S O
for p in lookm h2o snapkv-lookm; do S[$p]=$(median3 kv $p); done
N=$(median3 $PYB Benchmarks/e2e_npz.py numpy "$NPZ" "$OUT/numpy")
for p in lookm h2o snapkv-lookm; do
  if [ -n "${LOOKM_SRC:-}" ]; then O[$p]=$(median3 $PYB Benchmarks/e2e_npz.py official "$NPZ" "$OUT/official-$p" $p); fi
done
r() { "$PY" -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.2f}')" "$1" "$2"; }
echo "kvscope lookm ${S[lookm]} s; numpy lookm $N s: ×$(r "$N" "${S[lookm]}") (target ≥ 10×)"
for p in lookm h2o snapkv-lookm; do
  if [ -n "${O[$p]:-}" ]; then
    t=$([ $p = lookm ] && echo "≥ 3×" || echo "≥ 1×")
    echo "kvscope $p ${S[$p]} s; official torch $p ${O[$p]} s: ×$(r "${O[$p]}" "${S[$p]}") (target $t)"
  else
    echo "kvscope $p ${S[$p]} s (no official comparison: set LOOKM_SRC to a LOOK-M checkout)"
  fi
done
if [ -n "$MACHINE" ]; then
  BYTES=$(stat -c %s "$NPZ")
  # lookm: the whole archive (attention for the column sums, keys and values) and the cosine search
  # of every evicted key against every kept key (read from kvscope's saved cache: C kept per head).
  C=$("$PY" -c "import json,sys; c=json.load(open(sys.argv[1])); print(c['layers'][0]['actual'][0])" "$OUT/kv-lookm/cache.json" 2>/dev/null || echo 0)
  [ "$C" = 0 ] && C=672
  "$PY" Benchmarks/floor.py line "$MACHINE" "floor of kvscope lookm end to end" "${S[lookm]}" "$BYTES" $((32 * (2400 - C) * C * 128))
  "$PY" Benchmarks/floor.py line "$MACHINE" "floor of kvscope h2o end to end (attention, K, V)" "${S[h2o]}" "$BYTES" 0
  "$PY" Benchmarks/floor.py line "$MACHINE" "floor of kvscope snapkv-lookm end to end (attention, K, V; window logits)" "${S[snapkv-lookm]}" "$BYTES" $((32 * 240 * 2400 * 128))
fi

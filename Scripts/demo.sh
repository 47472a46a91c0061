#!/usr/bin/env bash
# The full demo: every figure from the shipped real trace and from a synthetic LLaVA-1.5-geometry
# trace, a budget sweep with its curves, the study report of both traces (report.html), and the
# curated gallery.
#
#     bash Scripts/demo.sh [path/to/kvscope]        (default .build/release/kvscope)
#
# Writes Output/demo/ (figures, sweep, synthetic trace) and refreshes Output/gallery/.
set -euo pipefail

KV=${1:-.build/release/kvscope}
OUT=${OUT:-Output/demo}
GALLERY=${GALLERY:-Output/gallery}
REAL=${DEMO_TRACE:-Examples/traces/smollm2-pseudoimg2x64-gen16-w24}
SYNTH=$OUT/llava-synth
SYNTH_LAYERS=${SYNTH_LAYERS:-8}

[ -x "$KV" ] || { echo "demo: no kvscope binary at $KV (make release first)" >&2; exit 2; }
[ -d "$REAL" ] || [ -f "$REAL" ] || { echo "demo: no trace at $REAL" >&2; exit 2; }
mkdir -p "$OUT" "$GALLERY"
step() { printf '\n== %s\n' "$*"; }
run() { echo "+ kvscope $*"; "$KV" "$@"; }

step "real trace: $REAL"
run info "$REAL"
run info "$REAL" --json > "$OUT/info.json.tmp" && mv "$OUT/info.json.tmp" "$OUT/info.json"
run render heatmap "$REAL" --layer 3 --mean -o "$OUT/real-heatmap-L3-mean.png"
run render heatmap "$REAL" --layer 3 --all-heads -o "$OUT/real-heatmap-L3-grid.png"
run render heatmap "$REAL" --layer 12 --head 4 --cmap magma -o "$OUT/real-heatmap-L12-H4-magma.svg"
run render retention "$REAL" --policies h2o,snapkv,lookm --budget 0.2 -o "$OUT/real-retention-b0.2.png"
run render patches "$REAL" --policies h2o,snapkv,lookm --budget 0.2 -o "$OUT/real-patches-b0.2.png"
run render patches "$REAL" --policies h2o,snapkv,lookm --budget 0.2 --show fate -o "$OUT/real-patch-fate-b0.2.png"
run render modality "$REAL" --policies h2o,snapkv,text-prior,lookm --budget 0.2 -o "$OUT/real-modality-b0.2.png"
run render merges "$REAL" --policy lookm --budget 0.2 --layer 3 --head 0 -o "$OUT/real-merges-L3-G0.png"
run render merges "$REAL" --policy lookm --budget 0.2 --layer 3 --head 0 --range 0:90 -o "$OUT/real-merges-L3-G0-zoom.pdf"
# Replay through decoding on the trace's 16 generated rows: look-once, and H2O's decode rule.
run render decoding "$REAL" --policies h2o,snapkv,streaming,tova,lookm --budget 0.2 -o "$OUT/real-decoding-b0.2.png"
run render decoding "$REAL" --policies h2o,snapkv,streaming,tova --budget 0.2 --evict-per-step -o "$OUT/real-decoding-evict-b0.2.png"
run render decoding "$REAL" --policies h2o,snapkv,streaming,tova --budget 0.2 --recompress-every 4 -o "$OUT/real-decoding-recompress4-b0.2.png"
# Another implementation's kept indices against KVScope's decision (here: KVScope's own h2o cache against snapkv).
rm -rf "$OUT/real-h2o-cache"
run simulate "$REAL" --policy h2o --budget 0.2 --save-cache "$OUT/real-h2o-cache" > /dev/null
run compare "$OUT/real-h2o-cache" "$REAL" --policy snapkv --budget 0.2 -o "$OUT/real-compare-h2o-snapkv.csv"
run render merge-flow "$REAL" --policies lookm,lookm-avg,pivot-merge --budget 0.2 -o "$OUT/real-merge-flow-b0.2.png"

step "synthetic LLaVA-1.5 geometry trace ($SYNTH_LAYERS layers)"
run synth "$SYNTH" --preset llava-1.5 --layers "$SYNTH_LAYERS" --force
run info "$SYNTH"
run render heatmap "$SYNTH" --layer 1 --mean -o "$OUT/llava-heatmap-L1-mean.png"
run render heatmap "$SYNTH" --layer 1 --all-heads -o "$OUT/llava-heatmap-L1-grid.png"
run render retention "$SYNTH" --policies h2o,snapkv,lookm --budget 0.2 -o "$OUT/llava-retention-b0.2.png"
run render patches "$SYNTH" --policies h2o,snapkv,lookm --budget 0.2 -o "$OUT/llava-patches-b0.2.png"
run render patches "$SYNTH" --policies h2o,snapkv,lookm --budget 0.2 --show fate -o "$OUT/llava-patch-fate-b0.2.png"
run render modality "$SYNTH" --policies h2o,snapkv,text-prior,lookm --budget 0.2 -o "$OUT/llava-modality-b0.2.png"
run render merges "$SYNTH" --policy lookm --budget 0.2 --layer 1 --head 0 -o "$OUT/llava-merges-L1-G0.png"
run render merge-flow "$SYNTH" --policies lookm,pivot-merge --merge-scope all,modality --budget 0.2 -o "$OUT/llava-merge-flow-b0.2.png"
# Merge scope: where lookm's evicted image tokens may merge, and what it does to the output error
# and image recall (the README's "Merge scope" numbers).
rm -rf "$OUT/sweep-llava-scope"
run sweep "$SYNTH" --policies text-prior,lookm --merge-scope all,modality,image --budgets 0.2,0.3,0.5 \
  --metrics output_error,image_recall,attention_recall,recall_image --out "$OUT/sweep-llava-scope"
awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
         $c["all_layers"] == "true" && $c["head_index"] == "" { v = $c["metric"] ($c["image"] == "" ? "" : "[" $c["image"] "]")
           printf "demo: merge scope  budget %-4s %-22s %-16s %.4f\n", $c["budget"], $c["policy"], v, $c["value"] }' "$OUT/sweep-llava-scope/results.csv"

step "budget sweep"
SWEPT=""
if "$KV" sweep --help 2>/dev/null | grep -q -- "--budgets"; then
  for name in real llava; do
    trace=$REAL; [ $name = llava ] && trace=$SYNTH
    rm -rf "$OUT/sweep-$name"   # the demo's own output: a re-run starts the sweep afresh
    run sweep "$trace" --policies full,oracle,h2o,snapkv,text-prior,lookm,streaming,random \
      --budgets 0.05,0.1,0.2,0.3,0.5 --out "$OUT/sweep-$name"
    for metric in attention_recall recall_image image_retention output_error; do
      if ! run render curves "$OUT/sweep-$name" --metric $metric -o "$OUT/$name-curves-$metric.png"; then
        echo "demo: no $metric curve for $name (metric absent from the sweep)"
      fi
    done
  done
  SWEPT=1
else
  echo "demo: this kvscope has no sweep command yet; skipping the sweep and its curves"
fi

step "ratio settings: which (hh_ratio, recent_ratio) are safe?"
EXPLORED=""
if "$KV" explore --help >/dev/null 2>&1; then
  rm -rf "$OUT/explore-real"
  run explore "$REAL" --policies lookm,text-prior,h2o,snapkv \
    --hh-ratio 0.02,0.05,0.1,0.15,0.2,0.3 --recent-ratio 0.02,0.05,0.1,0.2,0.3 \
    --safe 'attention_recall>=0.95' --safe 'output_error<=0.1' -o "$OUT/explore-real"
  cp "$OUT/explore-real/ratios-lookm-attention_recall.png" "$OUT/real-ratios-lookm-attention_recall.png"
  EXPLORED=1
fi

step "study report"
if [ -n "$SWEPT" ] && "$KV" report --help >/dev/null 2>&1; then
  # Both traces in one sweep, so that one page compares them; --resume makes a rerun cheap.
  run sweep "$REAL" "$SYNTH" --policies full,oracle,h2o,snapkv,text-prior,lookm,streaming,random \
    --budgets 0.05,0.1,0.2,0.3,0.5 --out "$OUT/sweep-study" --resume
  run report "$OUT/sweep-study" -o "$OUT/report.html" --title "KVScope study: the shipped real trace and a LLaVA-1.5-geometry trace"
  chrome=$(command -v chromium || command -v chromium-browser || true)
  if [ -n "$chrome" ]; then
    "$chrome" --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1280,2400 \
      --user-data-dir="$OUT/.chromium" --screenshot="$OUT/report.png" "file://$(cd "$OUT" && pwd)/report.html" >/dev/null 2>&1 \
      && echo "demo: screenshot of the report in $OUT/report.png"
    rm -rf "$OUT/.chromium"
  else
    echo "demo: no chromium here (apt-get install chromium): the report's screenshot is not refreshed"
  fi
fi

step "gallery: $GALLERY"
# The gallery and README.md's captions list the same files.
gallery=(real-heatmap-L3-grid.png real-retention-b0.2.png real-patches-b0.2.png real-patch-fate-b0.2.png
         real-modality-b0.2.png real-merges-L3-G0.png llava-heatmap-L1-grid.png llava-retention-b0.2.png
         llava-patches-b0.2.png llava-patch-fate-b0.2.png real-decoding-b0.2.png real-decoding-evict-b0.2.png
         real-merge-flow-b0.2.png llava-merge-flow-b0.2.png)
[ -n "$SWEPT" ] && gallery+=(llava-curves-attention_recall.png real-curves-image_retention.png report.png)
[ -n "$EXPLORED" ] && gallery+=(real-ratios-lookm-attention_recall.png)
for f in "${gallery[@]}"; do
  [ -f "$OUT/$f" ] && cp "$OUT/$f" "$GALLERY/$f" && echo "gallery: $GALLERY/$f ($(( $(wc -c < "$OUT/$f") / 1024 )) KB)"
done
echo
echo "demo: figures in $OUT, gallery in $GALLERY"

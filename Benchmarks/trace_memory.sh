#!/usr/bin/env bash
# Peak resident memory of reading every layer of a large trace: 32 layers × 32 heads × 2,400 tokens,
# window rows (32 prefill + 16 generated) + column sums + q/k/v (≈ 48 MB per layer, ≈ 1.5 GB in all).
# `kvscope info` maps each layer, checks every value (NaN/Inf, row sums, causal mask) and unmaps it.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-.build/release/kvscope}
TRACE=Output/bench/large-2400
if [ ! -f "$TRACE/trace.json" ]; then
  echo "synthesising $TRACE (32 layers, once) …"
  "$BIN" synth "$TRACE" --preset llava-1.5 --text-len 656 --force >/dev/null
fi
python3 - "$BIN" "$TRACE" <<'PY'
import os, resource, subprocess, sys, time, json
bin_, trace = sys.argv[1], sys.argv[2]
files = [os.path.join(trace, f) for f in os.listdir(trace) if f.endswith(".safetensors")]
total = sum(os.path.getsize(f) for f in files)
layer = total / len(files)
t = time.perf_counter()
out = subprocess.run([bin_, "info", trace, "--json"], check=True, capture_output=True).stdout
dt = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
info = json.loads(out)
print(f"trace: {info['layers']} layers x {info['query_heads']} heads x T={info['seq_len']}: {total/2**20:.0f} MiB on disk, {layer/2**20:.1f} MiB per layer")
print(f"kvscope info (every layer mapped, every value checked): {dt:.2f} s, peak RSS {peak/2**20:.0f} MiB = {peak/layer:.1f} layers' worth")
PY

#!/usr/bin/env bash
# Builds the libFuzzer entry in Fuzz/ once (swiftc -sanitize=fuzzer,address, with the KVTrace
# sources compiled in) as .build-fuzz/kvscope-fuzz, seeds each target's corpus from the test
# fixtures, the shipped example trace and every saved regression, and runs each target for
# FUZZ_SECONDS (default 60).
# A crash is saved as Tests/KVTraceTests/Fixtures/fuzz-regressions/<target>/crash-<sha1>, which the
# normal Swift test suite replays from then on (FuzzRegressionTests); the script then exits 1.
#
#   Scripts/fuzz.sh [target …]      targets: npy npz safetensors tracejson barearrays (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH="${FUZZ_SECONDS:-60}"
OUT=.build-fuzz
REG=Tests/KVTraceTests/Fixtures/fuzz-regressions
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(npy npz safetensors tracejson barearrays)
mkdir -p "$OUT"
SOURCES=$(find Sources/KVTrace -name '*.swift' | sort)

build() {
  local bin="$OUT/kvscope-fuzz"
  local newest
  newest=$(ls -t $SOURCES Fuzz/*.swift Sources/CKernels/ckernels.c Sources/CKernels/include/ckernels.h | head -1)
  if [ ! -x "$bin" ] || [ "$newest" -nt "$bin" ]; then
    echo "fuzz: building $bin"
    # The C kernels KVTrace calls (CRC-gathered column sums), built with the same sanitizers and a
    # module map of their header, as SwiftPM would generate it.
    mkdir -p "$OUT/CKernels"
    printf 'module CKernels {\n    header "%s"\n    export *\n}\n' "$PWD/Sources/CKernels/include/ckernels.h" > "$OUT/CKernels/module.modulemap"
    clang -c -O2 -g -fsanitize=fuzzer-no-link,address -I Sources/CKernels/include Sources/CKernels/ckernels.c \
      -o "$OUT/ckernels.o" > "$OUT/build.log" 2>&1 || { grep -E "error" -A3 "$OUT/build.log" >&2; exit 2; }
    swiftc -sanitize=fuzzer,address -parse-as-library -O -g -module-name KVTraceFuzz \
      -I Sources/CZlib -I Sources/CIsal -I Sources/CFileIO -I "$OUT/CKernels" $SOURCES Fuzz/*.swift "$OUT/ckernels.o" -o "$bin" >> "$OUT/build.log" 2>&1 \
      || { grep -E "error" -A3 "$OUT/build.log" >&2; exit 2; }
  fi
}

seed() {
  local t=$1 dir="$OUT/corpus/$t"
  mkdir -p "$dir" "$REG/$t"
  case $t in
    npy) cp Tests/KVTraceTests/Fixtures/*.npy "$dir/" ;;
    npz) cp Tests/KVTraceTests/Fixtures/*.npz "$dir/" ;;
    safetensors) python3 Scripts/fuzz_seeds.py safetensors "$dir" ;;
    tracejson) for f in Examples/traces/*/trace.json; do cp "$f" "$dir/$(basename "$(dirname "$f")").json"; done
               python3 Scripts/fuzz_seeds.py tracejson "$dir" ;;
    barearrays) python3 Scripts/fuzz_seeds.py barearrays "$dir" ;;
  esac
  cp "$REG/$t"/* "$dir/" 2>/dev/null || true
}

status=0
for t in "${TARGETS[@]}"; do
  case " npy npz safetensors tracejson barearrays " in *" $t "*) ;; *) echo "fuzz: no target '$t'" >&2; exit 2 ;; esac
done
build
for t in "${TARGETS[@]}"; do
  seed "$t"
  echo "fuzz: $t for ${SECONDS_EACH}s"
  mkdir -p "$OUT/artifacts/$t"
  # rss_limit_mb: a reader must never need more; malloc_limit_mb catches single huge allocations.
  if ! KVSCOPE_FUZZ_TARGET=$t ASAN_OPTIONS=detect_leaks=0 "$OUT/kvscope-fuzz" "$OUT/corpus/$t" -max_total_time="$SECONDS_EACH" \
       -rss_limit_mb=1024 -malloc_limit_mb=600 -timeout=10 -max_len=65536 -print_final_stats=1 \
       -artifact_prefix="$OUT/artifacts/$t/" 2>"$OUT/$t.log"; then
    status=1
    tail -40 "$OUT/$t.log" >&2
    for a in "$OUT/artifacts/$t"/*; do
      [ -f "$a" ] || continue
      name="crash-$(sha1sum "$a" | cut -c1-16)"
      cp "$a" "$REG/$t/$name"
      echo "fuzz: $t found a problem, saved as $REG/$t/$name" >&2
    done
  fi
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$OUT/$t.log" | sed "s/^/fuzz: $t /" || true
done
exit $status

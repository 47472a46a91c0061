#!/usr/bin/env bash
# A KVScope study on a Slurm cluster: one sharded sweep as a job array, collected when every task
# has succeeded. Run from the repository root on a login node:
#   bash Examples/slurm/study.sh [TASKS] [OUT]
# Environment: KVSCOPE (the binary, default .build/release/kvscope), PARTITION, TIME, MEM; TRACES
# (default: the shipped trace; a real study lists its recorded traces, e.g. "traces/*").
set -euo pipefail
TASKS=${1:-4}
OUT=${2:-Output/slurm-study}
KVSCOPE=${KVSCOPE:-.build/release/kvscope}
TRACES=${TRACES:-Examples/traces/smollm2-pseudoimg2x64-gen16-w24}
extra=()
[ -n "${PARTITION:-}" ] && extra+=(--partition "$PARTITION")
[ -n "${TIME:-}" ] && extra+=(--time "$TIME")
[ -n "${MEM:-}" ] && extra+=(--mem "$MEM")
submit=--submit
command -v sbatch >/dev/null 2>&1 || { echo "study.sh: no sbatch here: writing the scripts only" >&2; submit=; }
# shellcheck disable=SC2086
"$KVSCOPE" slurm sweep $TRACES \
    --policies h2o,snapkv,streaming,tova,lookm \
    --hh-ratio 0.02,0.05,0.1,0.15,0.2,0.3 --recent-ratio 0.02,0.05,0.1,0.15,0.2 \
    -o "$OUT" --tasks "$TASKS" --cpus-per-task 2 "${extra[@]}" $submit

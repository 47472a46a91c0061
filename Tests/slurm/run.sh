#!/usr/bin/env bash
# make test-slurm: a real one-node Slurm cluster on this machine, in a temporary folder.
#
# Installs Debian's slurm-wlm and munge when absent, starts munged, slurmctld and slurmd with a
# private configuration (their own sockets, ports, state and logs under the temporary folder), and:
#   1. runs the sweep once in a single process (the reference);
#   2. `kvscope slurm sweep … --tasks 4 --submit`: a 4-task array and a collect job after it; waits;
#      checks results.csv and results.json are byte-identical to the reference;
#   3. again, cancelling one array task mid-run (scancel): checks collect refuses the unfinished
#      shard, resubmits that task alone (it resumes its finished layers) and a collect job after
#      it; checks byte-identity again.
# The daemons it started are stopped by their pids whatever happens (trap EXIT).
# Usage: bash Tests/slurm/run.sh [path/to/kvscope]
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
KV=$(readlink -f "${1:-.build/debug/kvscope}")
[ -x "$KV" ] || { echo "test-slurm: no kvscope binary at $KV (swift build first)" >&2; exit 2; }
TRACE=Examples/traces/smollm2-pseudoimg2x64-gen16-w24
SWEEP=("$TRACE" --policies h2o,lookm,snapkv,streaming --budgets 0.1,0.2,0.3 --metrics kept_ratio,attention_recall,output_error --jobs 1)
START=$SECONDS
say() { printf '[test-slurm %3ds] %s\n' $((SECONDS - START)) "$*"; }

need=()
for c in munged slurmctld slurmd sbatch; do command -v "$c" >/dev/null 2>&1 || need+=("$c"); done
if [ ${#need[@]} -gt 0 ]; then
  say "installing slurm-wlm and munge (missing: ${need[*]})"
  if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq slurm-wlm munge >/dev/null
fi
MUNGED=$(command -v munged); SLURMCTLD=$(command -v slurmctld); SLURMD=$(command -v slurmd)

D=$(mktemp -d /tmp/kvscope-slurm.XXXXXX)
chmod 700 "$D"
PIDS=()      # daemons we started, stopped in reverse order
JOBS=()      # jobs we submitted, cancelled before the daemons stop
cleanup() {
  local rc=$?
  set +e
  if [ ${#JOBS[@]} -gt 0 ] && [ -n "${SLURM_CONF:-}" ]; then scancel "${JOBS[@]}" >/dev/null 2>&1; sleep 1; fi
  for (( i=${#PIDS[@]}-1; i>=0; i-- )); do
    p=${PIDS[i]}
    kill "$p" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null
    wait "$p" 2>/dev/null
  done
  if [ $rc -ne 0 ]; then
    echo "test-slurm: FAILED (status $rc); daemon logs:" >&2
    tail -n 20 "$D"/log/*.log >&2 2>/dev/null
    tail -n 20 "$D"/out/slurm/logs/* >&2 2>/dev/null
  fi
  rm -rf "$D"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$D/munge" "$D/state" "$D/spool" "$D/log"
# munge: a private key, socket and pid file.
dd if=/dev/urandom of="$D/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$D/munge/munge.key"
"$MUNGED" -F --force --socket="$D/munge/socket" --key-file="$D/munge/munge.key" --pid-file="$D/munge/munged.pid" \
  --log-file="$D/log/munged.log" --seed-file="$D/munge/seed" >"$D/log/munged.stdout" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do [ -S "$D/munge/socket" ] && break; sleep 0.1; done
[ -S "$D/munge/socket" ] || { echo "test-slurm: munged did not start" >&2; exit 1; }

HOST=$(hostname -s)
CPUS=$(nproc)
MEM=$(( $(free -m | awk '/^Mem:/ {print $2}') * 9 / 10 ))
PORT=$(( 20000 + RANDOM % 20000 ))
export SLURM_CONF="$D/slurm.conf"
cat > "$SLURM_CONF" <<CONF
ClusterName=kvscope-test
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$D/munge/socket
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=kill_invalid_depend
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
MailProg=/bin/true
MinJobAge=600
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
"$SLURMCTLD" -D -c -i -f "$SLURM_CONF" >"$D/log/slurmctld.stdout" 2>&1 &
PIDS+=($!)
"$SLURMD" -D -N "$HOST" -f "$SLURM_CONF" >"$D/log/slurmd.stdout" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
  state=$(sinfo -h -n "$HOST" -o %T 2>/dev/null || true)
  [ "$state" = idle ] && break
  sleep 0.2
done
[ "$state" = idle ] || { echo "test-slurm: the node did not come up (state '$state')" >&2; exit 1; }
say "cluster up: $HOST, $CPUS CPUs, slurmctld port $PORT"

# Waits for jobs to leave the queue; prints each one's final state.
wait_jobs() {
  for _ in $(seq 600); do
    [ -z "$(squeue -h -j "$(IFS=,; echo "$*")" 2>/dev/null)" ] && break
    sleep 0.2
  done
  [ -z "$(squeue -h -j "$(IFS=,; echo "$*")" 2>/dev/null)" ] || { echo "test-slurm: jobs $* still queued after 2 minutes" >&2; exit 1; }
}
job_state() { scontrol -o show job "$1" | tr ' ' '\n' | awk -F= '$1=="JobState" {print $2}' | sort -u | tr '\n' ' '; }

# The jobs run in $D with relative paths, as a user would from the repository root.
mkdir -p "$D/$(dirname "$TRACE")" && cp -r "$REPO/$TRACE" "$D/$TRACE"
cd "$D"
OUT=out
say "reference: one process"
t0=$SECONDS
"$KV" sweep "${SWEEP[@]}" -o "$OUT" >/dev/null
say "reference sweep took $((SECONDS - t0)) s"
mkdir -p ref && mv "$OUT/results.csv" "$OUT/results.json" ref/ && rm -rf "$OUT"

check_identical() {
  cmp "$OUT/results.csv" ref/results.csv || { echo "test-slurm: $1: results.csv differs from the single-process sweep" >&2; exit 1; }
  cmp "$OUT/results.json" ref/results.json || { echo "test-slurm: $1: results.json differs from the single-process sweep" >&2; exit 1; }
  say "$1: results.csv ($(wc -l < "$OUT/results.csv") lines) and results.json byte-identical to the single-process sweep"
}

# --- 1: a 4-task array and its collect job -------------------------------------------------------
t0=$SECONDS
ids=$("$KV" slurm sweep "${SWEEP[@]}" -o "$OUT" --tasks 4 --cpus-per-task 1 --submit)
echo "$ids" | sed 's/^/    /'
ARRAY=$(echo "$ids" | awk '/^array job/ {print $3}'); COLLECT=$(echo "$ids" | awk '/^collect job/ {print $3}')
JOBS+=("$ARRAY" "$COLLECT")
wait_jobs "$ARRAY" "$COLLECT"
st=$(job_state "$COLLECT")
[ "$st" = "COMPLETED " ] || { echo "test-slurm: collect job $COLLECT ended $st" >&2; exit 1; }
say "array $ARRAY + collect $COLLECT done in $((SECONDS - t0)) s"
check_identical "4-task array"

# --- 2: cancel one task mid-run, resubmit it, collect again ----------------------------------------
rm -rf "$OUT"
t0=$SECONDS
ids=$("$KV" slurm sweep "${SWEEP[@]}" -o "$OUT" --tasks 4 --cpus-per-task 1 --submit)
ARRAY=$(echo "$ids" | awk '/^array job/ {print $3}'); COLLECT=$(echo "$ids" | awk '/^collect job/ {print $3}')
JOBS+=("$ARRAY" "$COLLECT")
SHARD="$OUT/shards/2-of-4"
for _ in $(seq 600); do
  [ -n "$(ls "$SHARD/.parts" 2>/dev/null)" ] && break
  sleep 0.05
done
[ -n "$(ls "$SHARD/.parts" 2>/dev/null)" ] || { echo "test-slurm: task 1 never wrote a layer" >&2; exit 1; }
scancel "${ARRAY}_1"
[ ! -e "$SHARD/shard.json" ] || { echo "test-slurm: task 1 finished before scancel; the sweep is too small to cancel mid-run" >&2; exit 1; }
say "cancelled task ${ARRAY}_1 after $(ls "$SHARD/.parts" | wc -l) finished layer file(s)"
# Its collect job can never start (afterok); cancel it as a user would, and let the other tasks finish.
scancel "$COLLECT"
wait_jobs "$ARRAY" "$COLLECT"
[ ! -e "$SHARD/shard.json" ] || { echo "test-slurm: the cancelled task still finished its shard" >&2; exit 1; }
if msg=$("$KV" collect "$OUT" 2>&1); then echo "test-slurm: collect accepted an unfinished shard" >&2; exit 1; fi
case "$msg" in *"2-of-4"*) say "collect refused: $msg" ;; *) echo "test-slurm: collect's refusal does not name the shard: $msg" >&2; exit 1 ;; esac
[ ! -e "$OUT/results.csv" ] || { echo "test-slurm: results.csv written despite the cancelled task" >&2; exit 1; }
AGAIN=$(sbatch --parsable --array=1 "$OUT/slurm/sweep-array.sh")
COLLECT2=$(sbatch --parsable --dependency=afterok:"$AGAIN" "$OUT/slurm/collect.sh")
JOBS+=("$AGAIN" "$COLLECT2")
say "resubmitted task 1 as $AGAIN (resumes), collect $COLLECT2 after it"
wait_jobs "$AGAIN" "$COLLECT2"
st=$(job_state "$COLLECT2")
[ "$st" = "COMPLETED " ] || { echo "test-slurm: collect job $COLLECT2 ended $st" >&2; exit 1; }
say "cancel + resubmit + collect done in $((SECONDS - t0)) s"
check_identical "cancelled and resumed task"
say "passed in $((SECONDS - START)) s"

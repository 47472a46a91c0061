#!/usr/bin/env bash
# Runs the exporter's tests (Examples/export/tests) in a virtualenv at Examples/export/.venv.
#
# * First run: creates the venv and installs requirements.txt (torch CPU wheel, transformers, …).
# * Later runs: skip pip entirely while requirements.txt is unchanged (stamp file holding its hash).
# * Falls back to `pip install --target .venv/site` when `python3 -m venv` is unavailable
#   (Debian without the python3-venv package).
#   KVSCOPE_EXPORT_NO_VENV=1 forces that mode.
# * KVSCOPE_BIN=/path/to/kvscope enables the `kvscope info --json` test; it is skipped otherwise.
#
# Extra arguments go to pytest, e.g. `./run_tests.sh -k llava -x`.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv"
REQ="$HERE/requirements.txt"
STAMP="$VENV/.requirements.sha256"
PY_BOOT="${PYTHON:-python3}"

hash_req() { "$PY_BOOT" -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$REQ"; }
WANT="$(hash_req)"

PY=""
MODE=""
if [ -z "${KVSCOPE_EXPORT_NO_VENV:-}" ] && [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
  PY="$VENV/bin/python"; MODE=venv
elif [ -d "$VENV/site" ]; then
  PY="$PY_BOOT"; MODE=target
elif [ -z "${KVSCOPE_EXPORT_NO_VENV:-}" ] && "$PY_BOOT" -m venv "$VENV" >/dev/null 2>&1 && "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
  PY="$VENV/bin/python"; MODE=venv
else
  echo "run_tests.sh: python3 -m venv unavailable; installing into $VENV/site with pip --target" >&2
  rm -rf "$VENV"; mkdir -p "$VENV/site"
  PY="$PY_BOOT"; MODE=target
fi

if [ "$MODE" = target ]; then
  export PYTHONPATH="$VENV/site${PYTHONPATH:+:$PYTHONPATH}"
fi

if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$WANT" ]; then
  echo "run_tests.sh: installing requirements ($MODE) …" >&2
  t0=$(date +%s)
  if [ "$MODE" = venv ]; then
    "$PY" -m pip install --disable-pip-version-check -q -r "$REQ"
  else
    "$PY" -m pip install --disable-pip-version-check -q --upgrade --target "$VENV/site" -r "$REQ"
  fi
  echo "$WANT" > "$STAMP"
  echo "run_tests.sh: requirements installed in $(( $(date +%s) - t0 )) s" >&2
fi

cd "$HERE"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PYTHONPATH="$HERE${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" -m pytest -rs -p no:cacheprovider "$@" tests

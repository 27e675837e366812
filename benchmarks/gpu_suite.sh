#!/usr/bin/env bash
# Every GPU measurement of the project in one script, sized for a ~10-minute device lease:
#   bash benchmarks/gpu_suite.sh [OUT_DIR]
# Writes benchmarks/results/{flow,train,convlstm,dry_run}-<gpu>.json (and copies them to
# OUT_DIR when given). Each step has its own time limit so one slow stage cannot eat the
# whole lease; a failing step is reported and the others still run.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python}
OUT=${1:-}
export PYTHONUNBUFFERED=1 TWOSTREAM_QUIET=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
run() {  # run <seconds> <name> <command...>
  local limit=$1 name=$2; shift 2
  echo "=== $name (limit ${limit}s)"
  local t0=$SECONDS
  if timeout "$limit" "$@"; then echo "=== $name ok in $((SECONDS - t0)) s"
  else echo "=== $name FAILED (status $?) after $((SECONDS - t0)) s"; fi
}
run 150 flow     $PY benchmarks/flow.py --device cuda
run 180 train    $PY benchmarks/train.py --device cuda
run 120 convlstm $PY benchmarks/convlstm.py --device cuda
run 150 dry_run  $PY benchmarks/dry_run.py --device cuda
if [ -n "$OUT" ]; then cp benchmarks/results/*.json "$OUT"/ 2>/dev/null || true; fi

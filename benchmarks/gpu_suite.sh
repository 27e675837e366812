#!/usr/bin/env bash
# Every GPU measurement of the project in one script, at most 10 minutes on one H100/H200, on a
# bare machine (a checkout and a Python with torch; nothing else installed):
#   bash benchmarks/gpu_suite.sh [OUT_DIR]            # on the GPU machine (e.g. OUT_DIR=$OUT)
#   bash benchmarks/gpu_suite.sh --dry-run [OUT_DIR]  # the same steps on the CPU, tiny sizes
#
# The package is put on the path (PYTHONPATH=lib; GPU_SUITE_PIP=1: pip install -e . --no-deps
# first) and its imports are checked before anything else: when they fail nothing else runs.
# Steps (each with its own time limit, all under one budget of GPU_SUITE_BUDGET_S = 570 s; a
# failing, stopped or skipped step is recorded as failed and the next one still runs; the exit
# status is 1 when any step did not pass):
#   imports         python, torch (+ CUDA), torchvision, cv2, numpy and every twostream module
#                                                                   -> imports-<gpu>.json
#   flow_batch      TV-L1 pairs/s at 320x240 and 340x256 for batch sizes 1-256, eager /
#                   CUDA graphs / torch.compile, with peak memory  -> flow-batch-<gpu>.json
#   flow_agreement  torch on CUDA vs torch on the CPU on the real ground-truth pairs
#                   (cudaoptflow's similarity test, EPE of each)   -> flow-agreement-<gpu>.json
#                   FAILS when ../shared/data/flow_gt is absent or no pair was compared
#   train           benchmarks/train.py at paper shapes (ResNet-101, 224, batch 32)
#   convlstm        benchmarks/convlstm.py at paper shapes (7x7x2048, hidden 300, T 25)
#   checks          benchmarks/gpu_checks.py: the loader at 0 / num_workers / 2 x num_workers
#                   workers (host and device pipelines), peak GPU memory at the params file's
#                   batch sizes, torch.compile + checkpoint round trip -> gpu-checks-<gpu>.json
#   dry_run         benchmarks/dry_run.py (the full-scale path, a few steps per stage)
# and a summary gpu-suite-<gpu>.json (steps, status, seconds, files, provenance), rewritten
# after every step. Every step writes its JSON into the output folder as it goes (flow_batch,
# flow_agreement, checks and dry_run after every row / section / stage), so a step stopped by
# its time limit keeps what it measured.
#
# Output folder: OUT_DIR when given, else benchmarks/results (a real run) or a new temporary
# folder (--dry-run, which never writes to benchmarks/results). A real run given OUT_DIR also
# copies every JSON into benchmarks/results. --dry-run runs every step on the CPU at tiny
# sizes; dry_run.py has no size below its --quick mode (minutes on a CPU), so the dry run only
# checks that its command line loads (--help).
set -uo pipefail
cd "$(dirname "$0")/.."
DRY=0
if [ "${1:-}" = "--dry-run" ]; then DRY=1; shift; fi
OUT=${1:-}
if [ -z "${PY:-}" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
# the dry run is not held to the GPU's 10 minutes: a shared 2-core CPU is slow
if [ "$DRY" = 1 ]; then BUDGET=${GPU_SUITE_BUDGET_S:-1200}; else BUDGET=${GPU_SUITE_BUDGET_S:-570}; fi
export PY PYTHONUNBUFFERED=1 TWOSTREAM_QUIET=1 OMP_WAIT_POLICY=PASSIVE
if [ "${GPU_SUITE_PIP:-0}" = 1 ]; then
  $PY -m pip install -q -e . --no-deps || echo "=== pip install -e . failed; using PYTHONPATH=lib"
fi
export PYTHONPATH="$PWD/lib${PYTHONPATH:+:$PYTHONPATH}"
# The real ground-truth flow pairs: ../shared/data beside the checkout, else .shared/data in
# it (a lent GPU machine gets only the checkout: copy ../shared/data/flow_gt there, 12 MB)
if [ -z "${TWOSTREAM_SHARED_DATA:-}" ]; then
  if [ -d "$PWD/../shared/data" ]; then TWOSTREAM_SHARED_DATA=$PWD/../shared/data
  else TWOSTREAM_SHARED_DATA=$PWD/.shared/data; fi
fi
export TWOSTREAM_SHARED_DATA

if [ "$DRY" = 1 ]; then
  RES=${OUT:-$(mktemp -d -t gpu-suite-dry-XXXXXX)}
  SLUG=dry-run-cpu
else
  RES=${OUT:-benchmarks/results}
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
  SLUG=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n1 |
         tr '[:upper:]' '[:lower:]' | sed -E 's/[^a-z0-9]+/-/g; s/^-+|-+$//g')
  SLUG=${SLUG:-cuda}
  # dry_run.py names its file after the last word of the GPU's name (dry_run-h200.json)
  TAG=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n1 |
        awk '{print tolower($NF)}')
fi
mkdir -p "$RES"
STEPS=$(mktemp -t gpu-suite-steps-XXXXXX)
DRY_SLACK=${GPU_SUITE_DRY_SLACK:-3}  # dry-run limits x this (CPU timings vary with load)
SUMMARY="$RES/gpu-suite-$SLUG.json"
START=$SECONDS

summary() {  # rewrite the summary JSON from the steps so far
  $PY benchmarks/gpu_suite_summary.py "$STEPS" "$SUMMARY" "$DRY" "$BUDGET" \
    "$((SECONDS - START))" || echo "=== writing $SUMMARY failed"
}

run() {  # run <limit s> <name> <json file or -> <command...>
  local limit=$1 name=$2 file=$3; shift 3
  # GPU_SUITE_STEPS="a b": run only those steps (the others are left out, not recorded)
  if [ -n "${GPU_SUITE_STEPS:-}" ] && [[ " $GPU_SUITE_STEPS " != *" $name "* ]]; then return; fi
  [ "$DRY" = 1 ] && limit=$((limit * DRY_SLACK))
  local left=$((BUDGET - (SECONDS - START)))
  if [ "$left" -lt 10 ]; then
    echo "=== $name SKIPPED (counts as failed): ${left}s of the ${BUDGET}s budget left"
    printf '%s\tskipped\t0\t0\t%s\n' "$name" "$file" >>"$STEPS"
    summary
    return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  echo "=== $name (limit ${limit}s)"
  local t0=$SECONDS status
  timeout --signal=TERM --kill-after=5 "$limit" "$@"
  status=$?
  local took=$((SECONDS - t0)) word=ok
  if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then word=timeout
  elif [ "$status" -ne 0 ]; then word=failed; fi
  echo "=== $name $word (status $status) in ${took}s"
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$word" "$status" "$took" "$file" >>"$STEPS"
  summary
}

agreement() {  # agreement <json> <flow.py command...>: failed when it compared no pair
  local file=$1; shift
  local gt=$TWOSTREAM_SHARED_DATA/flow_gt
  if [ ! -d "$gt" ]; then
    echo "flow agreement needs the ground-truth pairs in $gt, which is absent: FAILED"
    return 3
  fi
  "$@" || return $?
  $PY -c 'import json, sys
rows = json.load(open(sys.argv[1])).get("agreement") or []
bad = [r for r in rows if "error" in r]
print(f"flow agreement: {len(rows)} rows compared, {len(bad)} with errors")
sys.exit(0 if rows and not bad else 4)' "$file"
}
export -f agreement

# imports first: on a bare machine without the package or a library nothing else can run
if [ "$DRY" = 1 ]; then CUDA_FLAG=; else CUDA_FLAG=--require-cuda; fi
run 45 imports "$RES/imports-$SLUG.json" $PY benchmarks/gpu_suite_imports.py \
  --out "$RES/imports-$SLUG.json" $CUDA_FLAG
if { [ -z "${GPU_SUITE_STEPS:-}" ] || [[ " $GPU_SUITE_STEPS " == *" imports "* ]]; } &&
   ! grep -q '"ok": true' "$RES/imports-$SLUG.json" 2>/dev/null; then
  echo "=== imports failed: nothing else can run (see $RES/imports-$SLUG.json)"
  rm -f "$STEPS"
  exit 1
fi

if [ "$DRY" = 1 ]; then
  run 30 flow_batch "$RES/flow-batch-$SLUG.json" $PY benchmarks/flow.py --device cpu \
    --sections batch --sizes 64x48 --batch-sizes 1 2 --modes eager --batch-preset fast \
    --batch-repeats 1 --out "$RES/flow-batch-$SLUG.json"
  run 30 flow_agreement "$RES/flow-agreement-$SLUG.json" bash -c 'agreement "$@"' agreement \
    "$RES/flow-agreement-$SLUG.json" $PY benchmarks/flow.py --device cpu \
    --sections agreement --agreement-pairs mmflow_00001 mmflow_0000000 --modes eager \
    --agreement-preset fast --out "$RES/flow-agreement-$SLUG.json"
  run 40 train "$RES/train-$SLUG.json" $PY benchmarks/train.py --quick --device cpu \
    --modes fp32 --streams spatial --steps 1 --warmup 0 --batch-size 2 --input-size 32 \
    --crop-size 40 --workers 0 --out "$RES/train-$SLUG.json"
  run 40 convlstm "$RES/convlstm-$SLUG.json" $PY benchmarks/convlstm.py --quick --device cpu \
    --layers 1 --kernels 3 --batch 1 --steps 1 --frames-videos 1 --read-files 2 \
    --out "$RES/convlstm-$SLUG.json"
  run 90 checks "$RES/gpu-checks-$SLUG.json" $PY benchmarks/gpu_checks.py --device cpu --tiny \
    --out "$RES/gpu-checks-$SLUG.json"
  run 20 dry_run - $PY benchmarks/dry_run.py --help
else
  # Limits from two H200 runs (gpu-suite-nvidia-h200.json of 2cfc37e and of the commit after
  # it): batch 1 dropped from flow_batch (5-18 pairs/s, of no use at scale); inductor's
  # first compile of ResNet-101 takes 90 s, so checks needs ~155 s; dry_run 82-105 s; the
  # agreement's CPU reference ~4 s a pair. The limits add up to the budget:
  # 45 + 90 + 60 + 45 + 50 + 170 + 110 = 570 s.
  run 90 flow_batch "$RES/flow-batch-$SLUG.json" $PY benchmarks/flow.py --device cuda \
    --sections batch --sizes 320x240 340x256 --batch-sizes 16 64 256 \
    --modes eager graphs compile --batch-repeats 1 --out "$RES/flow-batch-$SLUG.json"
  run 60 flow_agreement "$RES/flow-agreement-$SLUG.json" bash -c 'agreement "$@"' agreement \
    "$RES/flow-agreement-$SLUG.json" $PY benchmarks/flow.py --device cuda \
    --sections agreement --modes eager graphs compile --out "$RES/flow-agreement-$SLUG.json"
  run 45 train "$RES/train-$SLUG.json" $PY benchmarks/train.py --device cuda \
    --modes fp32,bf16_cl --steps 10 --warmup 3 --out "$RES/train-$SLUG.json"
  run 50 convlstm "$RES/convlstm-$SLUG.json" $PY benchmarks/convlstm.py --device cuda \
    --steps 5 --out "$RES/convlstm-$SLUG.json"
  run 170 checks "$RES/gpu-checks-$SLUG.json" $PY benchmarks/gpu_checks.py --device cuda \
    --out "$RES/gpu-checks-$SLUG.json"
  run 110 dry_run "$RES/dry_run-${TAG:-cuda}.json" $PY benchmarks/dry_run.py --device cuda \
    --out "$RES"
fi

rm -f "$STEPS"
echo "=== suite done in $((SECONDS - START)) s (budget ${BUDGET} s); results in $RES"
if [ "$DRY" = 0 ] && [ "$RES" != benchmarks/results ]; then
  cp "$RES"/*.json benchmarks/results/ 2>/dev/null || true
fi
if grep -q '"all_steps_ok": true' "$SUMMARY" 2>/dev/null; then exit 0; fi
echo "=== some steps did not pass: see $SUMMARY"
exit 1

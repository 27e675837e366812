#!/usr/bin/env bash
# Every GPU measurement of the project in one script, at most 8 minutes on one H100/H200:
#   bash benchmarks/gpu_suite.sh [OUT_DIR]            # on the GPU machine
#   bash benchmarks/gpu_suite.sh --dry-run [OUT_DIR]  # the same steps on the CPU, tiny sizes
#
# Steps (each with its own time limit, all under one budget of GPU_SUITE_BUDGET_S = 465 s,
# so the suite cannot overrun 8 minutes; a failing or stopped step is recorded and the
# next one still runs):
#   flow_batch      TV-L1 pairs/s at 320x240 and 340x256 for batch sizes 1-256, eager /
#                   CUDA graphs / torch.compile, with peak memory  -> flow-batch-<gpu>.json
#   flow_agreement  torch on CUDA vs torch on the CPU on the real ground-truth pairs
#                   (cudaoptflow's similarity test, EPE of each)   -> flow-agreement-<gpu>.json
#   train           benchmarks/train.py at paper shapes (ResNet-101, 224, batch 32)
#   convlstm        benchmarks/convlstm.py at paper shapes (7x7x2048, hidden 300, T 25)
#   dry_run         benchmarks/dry_run.py (the full-scale path, a few steps per stage)
# and a summary gpu-suite-<gpu>.json (steps, status, seconds, files, provenance).
# flow_batch and flow_agreement rewrite their JSON after every row: a step stopped by its
# time limit keeps what it measured. train, convlstm and dry_run write theirs at the end.
#
# Results go to benchmarks/results/ (and are copied to OUT_DIR when given). --dry-run runs
# every step on the CPU at tiny sizes (well under a minute on 2 cores) and writes only to
# OUT_DIR (default: a new temporary folder), never to benchmarks/results; dry_run.py has no
# size below its --quick mode (minutes on a CPU), so the dry run only checks that its
# command line loads (--help).
set -uo pipefail
cd "$(dirname "$0")/.."
DRY=0
if [ "${1:-}" = "--dry-run" ]; then DRY=1; shift; fi
OUT=${1:-}
if [ -z "${PY:-}" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python; fi
fi
BUDGET=${GPU_SUITE_BUDGET_S:-465}
export PYTHONUNBUFFERED=1 TWOSTREAM_QUIET=1 OMP_WAIT_POLICY=PASSIVE

if [ "$DRY" = 1 ]; then
  RES=${OUT:-$(mktemp -d -t gpu-suite-dry-XXXXXX)}
  SLUG=dry-run-cpu
else
  RES=benchmarks/results
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
START=$SECONDS

run() {  # run <limit s> <name> <json file or -> <command...>
  local limit=$1 name=$2 file=$3; shift 3
  local left=$((BUDGET - (SECONDS - START)))
  if [ "$left" -lt 10 ]; then
    echo "=== $name SKIPPED: ${left}s of the ${BUDGET}s budget left"
    printf '%s\tskipped\t0\t0\t%s\n' "$name" "$file" >>"$STEPS"
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
}

if [ "$DRY" = 1 ]; then
  run 30 flow_batch "$RES/flow-batch-$SLUG.json" $PY benchmarks/flow.py --device cpu \
    --sections batch --sizes 64x48 --batch-sizes 1 2 --modes eager --batch-preset fast \
    --batch-repeats 1 --out "$RES/flow-batch-$SLUG.json"
  run 30 flow_agreement "$RES/flow-agreement-$SLUG.json" $PY benchmarks/flow.py --device cpu \
    --sections agreement --agreement-pairs mmflow_00001 mmflow_0000000 --modes eager \
    --agreement-preset fast --out "$RES/flow-agreement-$SLUG.json"
  run 40 train "$RES/train-$SLUG.json" $PY benchmarks/train.py --quick --device cpu \
    --modes fp32 --streams spatial --steps 1 --warmup 0 --batch-size 2 --input-size 32 \
    --crop-size 40 --workers 0 --out "$RES/train-$SLUG.json"
  run 40 convlstm "$RES/convlstm-$SLUG.json" $PY benchmarks/convlstm.py --quick --device cpu \
    --layers 1 --kernels 3 --batch 1 --steps 1 --frames-videos 1 --read-files 2 \
    --out "$RES/convlstm-$SLUG.json"
  run 20 dry_run - $PY benchmarks/dry_run.py --help
else
  # Sized on the estimates in README.md, "Optical flow"; nothing here has been timed on a
  # GPU yet: the first run's gpu-suite JSON says which limits to move.
  run 130 flow_batch "$RES/flow-batch-$SLUG.json" $PY benchmarks/flow.py --device cuda \
    --sections batch --sizes 320x240 340x256 --batch-sizes 1 16 64 256 \
    --modes eager graphs compile --batch-repeats 1 --out "$RES/flow-batch-$SLUG.json"
  run 50 flow_agreement "$RES/flow-agreement-$SLUG.json" $PY benchmarks/flow.py --device cuda \
    --sections agreement --modes eager graphs compile --out "$RES/flow-agreement-$SLUG.json"
  run 100 train "$RES/train-$SLUG.json" $PY benchmarks/train.py --device cuda \
    --modes fp32,bf16_cl --steps 10 --warmup 3 --out "$RES/train-$SLUG.json"
  run 70 convlstm "$RES/convlstm-$SLUG.json" $PY benchmarks/convlstm.py --device cuda \
    --steps 5 --out "$RES/convlstm-$SLUG.json"
  run 110 dry_run "$RES/dry_run-${TAG:-cuda}.json" $PY benchmarks/dry_run.py --device cuda \
    --out "$RES"
fi

SUMMARY="$RES/gpu-suite-$SLUG.json"
$PY - "$STEPS" "$SUMMARY" "$DRY" "$BUDGET" "$((SECONDS - START))" <<'EOF'
import json, sys, time
from pathlib import Path

sys.path.insert(0, "lib")
from twostream.study.results import git_commit, library_versions
from twostream.core.runtime import atomic_write_text, device_description

steps_file, out, dry, budget, wall = sys.argv[1:6]
steps = []
for line in Path(steps_file).read_text().splitlines():
    name, status, code, seconds, file = line.split("\t")
    has = file != "-" and Path(file).is_file()
    steps.append(dict(name=name, status=status, exit_code=int(code), seconds=int(seconds),
                      json=file if file != "-" else None, json_written=has))
record = dict(
    benchmark="gpu-suite",
    dry_run=dry == "1",
    created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    git_commit=git_commit(),
    device=device_description("cpu" if dry == "1" else "cuda"),
    versions=library_versions(),
    budget_s=int(budget),
    wall_s=int(wall),
    steps=steps,
)
atomic_write_text(out, json.dumps(record, indent=2) + "\n")
print(f"wrote {out}")
EOF
rm -f "$STEPS"
echo "=== suite done in $((SECONDS - START)) s (budget ${BUDGET} s); results in $RES"
if [ -n "$OUT" ] && [ "$DRY" = 0 ]; then cp "$RES"/*-"$SLUG".json "$OUT"/ 2>/dev/null || true; fi

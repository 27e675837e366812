#!/usr/bin/env bash
# Time `make test` from a fresh clone, installation included, twice: on an idle machine and
# with one busy process beside it (a CPU-bound spin loop, as when another job shares the
# machine). Prints a table and writes benchmarks/results/test_suite_time.json.
#
#   bash benchmarks/test_suite_time.sh            # clones HEAD (commit first: it times what is committed)
#   KEEP=1 bash benchmarks/test_suite_time.sh     # keep the clones for inspection
#
# The clones go beside the repository (../.suite-clone-*), so ../shared is found the way
# it is for the checkout itself; each one is a new venv + pip install + the whole suite.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
PARENT=$(dirname "$REPO")
OUT="$REPO/benchmarks/results/test_suite_time.json"
COMMIT=$(git -C "$REPO" rev-parse HEAD)
if [ -n "$(git -C "$REPO" status --porcelain --untracked-files=no)" ]; then
  echo "warning: uncommitted changes are not in the clone; timing commit $COMMIT" >&2
fi
declare -A SECONDS_OF STATUS_OF
run_once() {  # run_once <label> <busy processes>
  local label=$1 busy=$2 dir pids=()
  # the clone itself sits beside the repository, so its ../shared is the checkout's
  dir=$(mktemp -d "$PARENT/.suite-clone-XXXX")
  git clone --quiet "$REPO" "$dir"
  for ((i = 0; i < busy; i++)); do python3 -c "while True: pass" & pids+=($!); done
  local t0 status=0
  t0=$(date +%s.%N)
  (cd "$dir" && make test >"$dir.log" 2>&1) || status=$?
  SECONDS_OF[$label]=$(python3 -c "import time; print(round(time.time() - $t0, 1))")
  STATUS_OF[$label]=$status
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  echo "$label: make test exit $status in ${SECONDS_OF[$label]} s (log: $dir.log)" >&2
  tail -n 3 "$dir.log" >&2
  if [ "${KEEP:-0}" != 1 ]; then
    mv "$dir.log" "/tmp/make-test-$label.log"
    rm -rf "$dir"
  fi
}
run_once idle 0
run_once busy1 1
python3 - "$OUT" "$COMMIT" "${SECONDS_OF[idle]}" "${STATUS_OF[idle]}" \
  "${SECONDS_OF[busy1]}" "${STATUS_OF[busy1]}" <<'EOF'
import datetime, json, os, platform, sys
out, commit, idle_s, idle_rc, busy_s, busy_rc = sys.argv[1:]
cpu = platform.machine()
try:
    cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
except (OSError, StopIteration):
    pass
rows = [
    {"condition": "idle", "seconds": float(idle_s), "exit_status": int(idle_rc)},
    {"condition": "one busy process beside it", "seconds": float(busy_s), "exit_status": int(busy_rc)},
]
ratio = float(busy_s) / float(idle_s)
result = {
    "benchmark": "make test from a fresh clone, installation included",
    "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "git_commit": commit,
    "device": f"cpu: {cpu} ({len(os.sched_getaffinity(0))} cores)",
    "host": platform.node(),
    "rows": rows,
    "busy_over_idle": round(ratio, 3),
    "targets": {"idle_s_max": 600, "busy_over_idle_max": 1.5},
}
os.makedirs(os.path.dirname(out), exist_ok=True)
with open(out, "w") as fh:
    json.dump(result, fh, indent=2)
    fh.write("\n")
print(f"{'condition':32s} {'seconds':>8s} {'exit':>5s}")
for r in rows:
    print(f"{r['condition']:32s} {r['seconds']:8.1f} {r['exit_status']:5d}")
print(f"busy / idle = {ratio:.2f} (target <= 1.5; idle target <= 600 s) -> {out}")
EOF

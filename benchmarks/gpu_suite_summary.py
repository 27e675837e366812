"""benchmarks/gpu_suite.sh's summary: gpu-suite-<gpu>.json from the steps file the suite keeps
(name, status, exit code, seconds, JSON file per line), rewritten after every step.

    python benchmarks/gpu_suite_summary.py STEPS OUT DRY BUDGET_S WALL_S

A step passes only with status "ok"; "failed", "timeout" and "skipped" (no budget left) are
failures, listed under "failed", and "all_steps_ok" is false.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from twostream.core.runtime import atomic_write_text, device_description
from twostream.study.results import git_commit, library_versions


def main(argv=None) -> int:
    steps_file, out, dry, budget, wall = (argv or sys.argv[1:])[:5]
    steps = []
    for line in Path(steps_file).read_text().splitlines():
        name, status, code, seconds, file = line.split("\t")
        has = file != "-" and Path(file).is_file()
        steps.append(dict(name=name, status=status, ok=status == "ok", exit_code=int(code),
                          seconds=int(seconds), json=Path(file).name if file != "-" else None,
                          json_written=has))  # fmt: skip
    failed = [s["name"] for s in steps if not s["ok"]]
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
        failed=failed,
        all_steps_ok=bool(steps) and not failed,
    )
    atomic_write_text(out, json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

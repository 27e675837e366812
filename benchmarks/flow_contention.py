"""Torch TV-L1 on the CPU beside busy processes: the project's thread discipline vs torch's default.

One 320x240 pair (``paper`` preset, the smoke-size pair of the test-suite issue), timed in a
fresh process for each condition (OpenMP reads its wait policy at start-up):

* ``project``: ``flow.tvl1_batch(..., backend="torch")`` as the library runs it: passive
  OpenMP waiting and one thread for a batch this small (``twostream.core.threads``);
* ``torch default``: ``flow.tvl1_torch`` with torch's defaults (one spinning thread per core).

each with 0, 1 and 2 CPU-bound spin loops beside it, all six conditions run in turn in
``--rounds`` rounds (median per condition), so that the other load of a shared machine
drifts over every condition alike. Prints a table and writes
benchmarks/results/flow-contention-cpu.json. Target: the project's time with two busy
processes within 2x of its idle time. Beside wall time it records the CPU time of the
timed process (constant when no thread spins or thrashes: then a longer wall time is the
scheduler sharing the cores, ~1.5x for one thread beside two spinners on 2 cores), the
torch threads in force inside the solver, and the 1-minute load average before each
condition (other work on the machine makes every figure slower, the idle one included).

    .venv/bin/python benchmarks/flow_contention.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "lib"))

CHILD = r"""
import json, sys, time
sys.path.insert(0, {bench!r})
import numpy as np
import torch
from flow import gt_pair
from twostream.flow import tvl1 as flow
policy, repeats = sys.argv[1], int(sys.argv[2])
prev, nxt, _ = gt_pair("translation", 240, 320)
seen = []  # torch threads in force when the solver runs (inside tvl1_batch's thread rules)
solver = flow.tvl1_torch
def spy(*a, **k):
    seen.append(torch.get_num_threads())
    return solver(*a, **k)
flow.tvl1_torch = spy
def once():
    if policy == "project":
        flow.tvl1_batch([prev], [nxt], backend="torch", preset="paper")
    else:
        a = torch.from_numpy(prev).float()[None]
        b = torch.from_numpy(nxt).float()[None]
        flow.tvl1_torch(a, b, get_params("paper"), compile=False)
flow.tvl1_batch([prev[:64, :64]], [nxt[:64, :64]], backend="torch", preset="fast")  # warm-up
times, cpu = [], []
for _ in range(repeats):
    t, c = time.perf_counter(), time.process_time()
    once()
    times.append(time.perf_counter() - t); cpu.append(time.process_time() - c)
k = sorted(range(repeats), key=times.__getitem__)[repeats // 2]
print(json.dumps({{"seconds": times[k], "cpu_seconds": cpu[k], "threads": seen[-1]}}))
"""


def measure(policy: str, busy: int, repeats: int) -> dict:
    env = dict(os.environ)
    for var in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.pop(var, None)
    if policy == "project":
        env["OMP_WAIT_POLICY"] = "PASSIVE"  # what the CLI, the runner and `make test` set
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
    try:
        time.sleep(0.5 if busy else 0)
        load = os.getloadavg()[0]  # other work on the machine, spinners included
        code = CHILD.format(bench=str(REPO / "benchmarks"))
        out = subprocess.run(
            [sys.executable, "-c", code, policy, str(repeats)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        for p in spinners:
            p.kill()
            p.wait()
    return {**json.loads(out.strip().splitlines()[-1]), "load_before": round(load, 2)}


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def main(argv=None) -> int:
    from twostream.core.runtime import atomic_write_text, device_description
    from twostream.study.results import git_commit, library_versions

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=1, help="timed runs per process (median)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="rounds over all conditions, interleaved so that a change in the "
                    "machine's other load hits every condition alike (median per condition)")  # fmt: skip
    ap.add_argument("--out", default=str(REPO / "benchmarks/results/flow-contention-cpu.json"))
    args = ap.parse_args(argv)
    conditions = [(p, b) for p in ("project", "torch default") for b in (0, 1, 2)]
    runs: dict = {c: [] for c in conditions}
    for k in range(args.rounds):
        for policy, busy in conditions:
            m = measure(policy, busy, args.repeats)
            runs[(policy, busy)].append(m)
            print(f"round {k} {policy:14s} busy={busy}: {m['seconds']:.2f} s, CPU "
                  f"{m['cpu_seconds']:.2f} s ({m['threads']} threads, load {m['load_before']})",
                  flush=True)  # fmt: skip
    rows = []
    for (policy, busy), ms in runs.items():
        med = lambda key, ms=ms: float(np.median([m[key] for m in ms]))  # noqa: E731
        rows.append({"policy": policy, "busy_processes": busy, "seconds": med("seconds"),
                     "cpu_seconds": med("cpu_seconds"), "threads": ms[-1]["threads"],
                     "load_before": med("load_before"), "runs": ms})  # fmt: skip
    idle = {r["policy"]: r["seconds"] for r in rows if r["busy_processes"] == 0}
    for r in rows:
        r["over_idle"] = round(r["seconds"] / idle[r["policy"]], 3)
    print(f"\n{'policy':14s} {'busy':>4s} {'seconds':>8s} {'x idle':>7s} {'CPU s':>7s} "
          f"{'threads':>7s} {'load':>5s}")  # fmt: skip
    for r in rows:
        print(f"{r['policy']:14s} {r['busy_processes']:4d} {r['seconds']:8.2f} "
              f"{r['over_idle']:7.2f} {r['cpu_seconds']:7.2f} {r['threads']:7d} "
              f"{r['load_before']:5.2f}")  # fmt: skip
    worst = max(r["over_idle"] for r in rows if r["policy"] == "project")
    print(f"project: worst {worst:.2f}x its idle time (target <= 2)")
    record = {
        "benchmark": "flow-contention",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "git_commit": git_commit(),
        "device": device_description("cpu"),
        "versions": library_versions(),
        "pair": "320x240 synthetic translation, paper preset, torch backend",
        "repeats": args.repeats,
        "rounds": args.rounds,
        "rows": rows,
        "project_worst_over_idle": worst,
        "target_over_idle_max": 2.0,
        # With autogroup the kernel shares the CPU between sessions first: the timed process
        # and its spinners (one session) then split what other sessions leave them.
        "sched_autogroup_enabled": _read("/proc/sys/kernel/sched_autogroup_enabled"),
        "loadavg_end": os.getloadavg(),
    }
    atomic_write_text(args.out, json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

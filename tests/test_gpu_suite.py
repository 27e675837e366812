"""benchmarks/gpu_suite.sh --dry-run: every step of the GPU suite runs on the CPU at tiny sizes
and leaves the JSON the real run would leave (same scripts, same command lines)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SUITE = REPO / "benchmarks" / "gpu_suite.sh"
STEPS = ["flow_batch", "flow_agreement", "train", "convlstm", "dry_run"]


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    if shutil.which("bash") is None or shutil.which("timeout") is None:
        pytest.skip("the suite is a bash script that needs bash and coreutils' timeout")
    out = tmp_path_factory.mktemp("gpu-suite")
    results = REPO / "benchmarks" / "results"
    before = {p.name: p.stat().st_mtime_ns for p in results.glob("*.json")}
    env = dict(os.environ, PY=sys.executable)
    proc = subprocess.run(
        ["bash", str(SUITE), "--dry-run", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    after = {p.name: p.stat().st_mtime_ns for p in results.glob("*.json")}
    return out, proc, before, after


@pytest.mark.slow
def test_dry_run_runs_every_step_and_writes_json(dry_run):
    out, proc, before, after = dry_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "gpu-suite-dry-run-cpu.json").read_text())
    assert summary["dry_run"] is True and summary["benchmark"] == "gpu-suite"
    assert summary["git_commit"] and summary["versions"]["torch"]
    assert summary["wall_s"] > 0, summary  # its time is recorded (tests never assert timings)
    steps = {s["name"]: s for s in summary["steps"]}
    assert list(steps) == STEPS
    failed = {n: s for n, s in steps.items() if s["status"] != "ok"}
    assert not failed, (failed, proc.stdout[-3000:], proc.stderr[-3000:])
    for name in STEPS[:-1]:  # dry_run.py only loads (--help): it has no tiny size
        assert steps[name]["json_written"], steps[name]
    assert before == after, "the dry run must not touch benchmarks/results"


@pytest.mark.slow
def test_dry_run_benchmark_json(dry_run):
    out, _, _, _ = dry_run
    batch = json.loads((out / "flow-batch-dry-run-cpu.json").read_text())
    assert batch["sections"] == ["batch"] and batch["device"].startswith("cpu")
    rows = batch["batch"]
    assert [(r["size"], r["mode"], r["batch"]) for r in rows] == [
        ("64x48", "eager", 1),
        ("64x48", "eager", 2),
    ]
    assert all(r["pairs_per_s"] > 0 and "error" not in r for r in rows)
    assert all(r["peak_mem_mb"] is None for r in rows)  # a CUDA figure only
    train = json.loads((out / "train-dry-run-cpu.json").read_text())
    assert train["results"] and "error" not in train["results"][0]
    conv = json.loads((out / "convlstm-dry-run-cpu.json").read_text())
    assert conv["configs"] and conv["configs"][0]["layers"] == 1


@pytest.mark.slow
@pytest.mark.shared
def test_dry_run_agreement_json(dry_run, shared_data):
    out, _, _, _ = dry_run
    if not (shared_data / "flow_gt").is_dir():
        pytest.skip(f"needs {shared_data / 'flow_gt'}: the agreement step had nothing to compare")
    agree = json.loads((out / "flow-agreement-dry-run-cpu.json").read_text())["agreement"]
    assert {r["pair"] for r in agree} == {"mmflow_00001", "mmflow_0000000"}
    for r in agree:  # CPU against CPU in the dry run: identical
        assert r["similar"] and r["similarity"] < 1e-6 and r["epe_rel_diff"] == 0.0

"""benchmarks/gpu_suite.sh --dry-run: every step of the GPU suite runs on the CPU at tiny sizes
and leaves the JSON the real run would leave (same scripts, same command lines), in the output
folder it is given; a skipped or failed step fails the suite; flow agreement fails without
../shared; the compile + checkpoint round trip says why it fails."""

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
SHARED = Path(os.environ.get("TWOSTREAM_SHARED_DATA", REPO.parent / "shared" / "data"))
STEPS = ["imports", "flow_batch", "flow_agreement", "train", "convlstm", "checks", "dry_run"]


def _need_bash():
    if shutil.which("bash") is None or shutil.which("timeout") is None:
        pytest.skip("the suite is a bash script that needs bash and coreutils' timeout")


def _suite(out: Path, timeout: int, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SUITE), "--dry-run", str(out)], cwd=REPO,
        env=dict(os.environ, PY=sys.executable, **env), capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


def _unwrap_strips_compile() -> bool:
    """Whether a checkpoint saved from a torch.compile'd module loads into a plain one yet."""
    import tempfile

    import torch

    from twostream.train.checkpoint import load_checkpoint, save_checkpoint

    net = torch.nn.Linear(2, 2)
    with tempfile.TemporaryDirectory() as tmp:
        path = save_checkpoint(Path(tmp) / "c.pt", model=torch.compile(net, backend="eager"),
                               epoch=0, config={})  # fmt: skip
        try:
            load_checkpoint(path, model=torch.nn.Linear(2, 2), restore_rng=False)
        except RuntimeError:
            return False
    return True


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    _need_bash()
    out = tmp_path_factory.mktemp("gpu-suite")
    results = REPO / "benchmarks" / "results"
    before = {p.name: p.stat().st_mtime_ns for p in results.glob("*.json")}
    proc = _suite(out, timeout=1500)
    after = {p.name: p.stat().st_mtime_ns for p in results.glob("*.json")}
    return out, proc, before, after


@pytest.mark.slow
def test_dry_run_runs_every_step_and_writes_json(dry_run):
    out, proc, before, after = dry_run
    log = proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "gpu-suite-dry-run-cpu.json").read_text())
    assert summary["dry_run"] is True and summary["benchmark"] == "gpu-suite"
    assert summary["git_commit"] and summary["versions"]["torch"]
    assert summary["wall_s"] > 0, summary  # its time is recorded (tests never assert timings)
    steps = {s["name"]: s for s in summary["steps"]}
    assert list(steps) == STEPS
    expected_failures = set()
    if not (SHARED / "flow_gt").is_dir():
        expected_failures.add("flow_agreement")  # failed, never "ok" with nothing compared
    if not _unwrap_strips_compile():
        expected_failures.add("checks")  # the known _orig_mod. bug: see the round-trip test
    failed = {n for n, s in steps.items() if s["status"] != "ok"}
    assert failed == expected_failures, (failed, log)
    assert summary["failed"] == [n for n in STEPS if n in failed]
    assert summary["all_steps_ok"] is (not failed)
    assert proc.returncode == (1 if failed else 0), log
    for name in STEPS[:-1]:  # dry_run.py only loads (--help): it has no tiny size
        if name != "flow_agreement" or name not in failed:
            assert steps[name]["json_written"], steps[name]
    assert before == after, "the dry run must not touch benchmarks/results"


@pytest.mark.slow
def test_dry_run_benchmark_json(dry_run):
    out, _, _, _ = dry_run
    imports = json.loads((out / "imports-dry-run-cpu.json").read_text())
    assert imports["ok"] and imports["twostream_modules"] > 20 and not imports["errors"]
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
    checks = json.loads((out / "gpu-checks-dry-run-cpu.json").read_text())["sections"]
    assert list(checks) == ["loader", "memory", "carried", "roundtrip"]
    carried = checks["carried"]  # the batch-of-one head: timed, divided by its operators
    assert carried["status"] == "ok" and carried["ops_per_step"] > 100
    assert carried["us_per_op"] == pytest.approx(
        1e3 * carried["ms_per_step"] / carried["ops_per_step"], rel=1e-9
    )
    loader = checks["loader"]
    assert loader["status"] == "ok"
    assert {(r["pipeline"], r["workers"]) for r in loader["rows"]} == {
        (p, w) for p in ("host", "device") for w in (0, 1)
    }
    assert all(r["samples_per_s"] > 0 for r in loader["rows"])
    mem = checks["memory"]
    assert mem["status"] == "ok" and len(mem["rows"]) == 3
    assert all(r["peak_mb"] > 0 for r in mem["rows"])


@pytest.mark.slow
def test_dry_run_roundtrip_passes_or_names_the_prefix(dry_run):
    out, _, _, _ = dry_run
    rt = json.loads((out / "gpu-checks-dry-run-cpu.json").read_text())["sections"]["roundtrip"]
    if _unwrap_strips_compile():
        assert rt["status"] == "ok" and rt["max_abs_diff_eval"] <= 1e-4, rt
    else:
        assert rt["status"] == "failed", rt
        assert "_orig_mod." in rt["error"] and "uncompiled" in rt["error"], rt


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


def test_flow_agreement_fails_without_shared(tmp_path):
    _need_bash()
    proc = _suite(tmp_path, timeout=300, GPU_SUITE_STEPS="flow_agreement",
                  TWOSTREAM_SHARED_DATA=str(tmp_path / "absent"))  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    summary = json.loads((tmp_path / "gpu-suite-dry-run-cpu.json").read_text())
    assert [s["name"] for s in summary["steps"]] == ["flow_agreement"]
    assert summary["steps"][0]["status"] == "failed" and summary["all_steps_ok"] is False
    assert "absent" in proc.stdout


def test_a_skipped_step_fails_the_summary(tmp_path):
    steps = tmp_path / "steps.tsv"
    steps.write_text("imports\tok\t0\t3\t-\ntrain\tskipped\t0\t0\t-\n")
    out = tmp_path / "summary.json"
    script = REPO / "benchmarks" / "gpu_suite_summary.py"
    env = dict(os.environ, PYTHONPATH=str(REPO / "lib"))
    subprocess.run([sys.executable, str(script), str(steps), str(out), "1", "465", "3"],
                   check=True, env=env, timeout=120)  # fmt: skip
    summary = json.loads(out.read_text())
    assert summary["failed"] == ["train"] and summary["all_steps_ok"] is False
    assert [s["ok"] for s in summary["steps"]] == [True, False]

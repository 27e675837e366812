"""twostream.study.gpu_measured: the plan's GPU shares from a committed GPU dry run."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from twostream.core.config import StudyConfig
from twostream.flow.params import PRESETS
from twostream.study import cost_model, costs, gpu_measured
from twostream.study.cost_model import ASSUMPTIONS, TVL1_BYTES_PER_PIXEL_ITERATION, sizes

REPO = Path(__file__).resolve().parents[1]
PARAMS = REPO / "params"


def _dry_run(tmp: Path, *, device="cuda: NVIDIA H200", quick=False, complete=True) -> Path:
    stages = [
        {"stage": "TV-L1 flow (torch, paper preset)", "items_per_s": 50.0, "batch": 64},
        {"stage": "spatial stream training step", "items_per_s": 1000.0, "batch": 64},
        {"stage": "temporal stream training step", "items_per_s": 1000.0, "batch": 64},
    ]
    d = {"benchmark": "dry_run", "device": device, "quick": quick, "complete": complete,
         "created": "2026-12-04T18:00:00Z", "stages": stages,
         "config": {"backbone": "resnet101", "input_size": 224, "flow_length": 10,
                    "flow_preset": "paper", "fusion_layer": "conv5_x", "convlstm_layers": 2,
                    "convlstm_kernel": 5}}  # fmt: skip
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "dry_run-h200.json").write_text(json.dumps(d))
    return tmp


@pytest.fixture(scope="module")
def ucf_paper():
    return StudyConfig.from_yaml(PARAMS / "ucf101-paper.yaml", data_root="/nonexistent/data")


def test_the_shares_invert_the_plans_own_models(tmp_path):
    rates = gpu_measured.read_gpu_rates(_dry_run(tmp_path))
    shares = gpu_measured.measured_shares(rates)
    p = PRESETS["paper"]
    level = sum(320 * 240 * p.scale_step ** (2 * k) for k in range(p.nscales))
    bytes_pair = level * p.warps * p.inner_iterations * TVL1_BYTES_PER_PIXEL_ITERATION
    assert math.isclose(shares["bandwidth_utilisation"][0], 50.0 * bytes_pair / 4.8e12)
    assert "dry_run-h200.json" in shares["gpu_utilisation"][1]
    assert 0 < shares["gpu_utilisation"][0] < 0.1  # 1,000 img/s x ~47 GFLOP of 989 TFLOP/s
    assert "head_utilisation" not in shares  # no convlstm-<gpu>.json beside it


@pytest.mark.parametrize("kw", [{"device": "cpu: AMD EPYC"}, {"quick": True},
                                {"complete": False}, {"device": "cuda: Unknown GPU 9000"}])  # fmt: skip
def test_cpu_quick_partial_or_unknown_runs_are_not_read(tmp_path, kw):
    assert gpu_measured.read_gpu_rates(_dry_run(tmp_path, **kw)) is None


def test_the_plan_prices_flow_at_the_measured_rate_and_assume_still_wins(tmp_path, ucf_paper):
    results = _dry_run(tmp_path / "results")
    for name in ("input-pipeline-cpu.json", "disk_usage.json"):
        shutil.copy(REPO / "benchmarks" / "results" / name, results / name)
    pc = costs.plan_costs(ucf_paper, results_dir=results)
    flow = next(s for s in pc.stages if s.row["stage"] == "rawframes")
    s = sizes(ucf_paper, ucf_paper.split)
    pairs = s.videos * s.frames - s.videos
    pixels = s.width * s.height / (320 * 240)  # the plan's frames are larger than the run's
    # 50 pairs/s on the H200's 4.8 TB/s -> 50 x 3.35 / 4.8 on the H100 the plan prices
    assert math.isclose(flow.gpu_hours.value, pairs * pixels / (50 * 3.35 / 4.8) / 3600,
                        rel_tol=1e-6)  # fmt: skip
    assert "measured" in pc.bases.source("bandwidth_utilisation")
    mine = costs.plan_costs(ucf_paper, results_dir=results, assume=["bandwidth_utilisation=0.5"])
    assert mine.bases["bandwidth_utilisation"] == 0.5
    assert mine.bases.source("bandwidth_utilisation") == "set with --assume"
    bare = costs.plan_costs(ucf_paper, results_dir=tmp_path / "none")
    assert bare.bases["gpu_utilisation"] == ASSUMPTIONS["gpu_utilisation"][0]


def _flow_files(results: Path) -> Path:
    """A bare-solver run (flow.py's batch section) and the iteration counts beside the dry run."""
    rows = [{"size": "320x240", "preset": "paper", "mode": m, "batch": b, "pairs_per_s": r}
            for m, b, r in [("eager", 64, 140.0), ("compile", 64, 220.0), ("compile", 256, 250.0),
                            ("compile", 16, 100.0)]]  # fmt: skip
    rows.append(
        {
            "size": "340x256",
            "preset": "paper",
            "mode": "compile",
            "batch": 256,
            "pairs_per_s": 999.0,
        }
    )  # another size: not read
    (results / "flow-batch-nvidia-h200.json").write_text(
        json.dumps({"device": "cuda: NVIDIA H200", "batch": rows})
    )

    def one(as_timed, batches):
        return {
            "pairs": 8,
            "as_benchmarked": {"cost": as_timed},
            "batches": {str(k): {"cost": v} for k, v in batches.items()},
        }

    sets = {"flow_py": one(300.0, {16: 300.0, 64: 300.0, 256: 300.0}),
            "dry_run": one(1200.0, {16: 700.0, 64: 1100.0, 256: 1500.0}),
            "ucf101_real": one(550.0, {16: 400.0, 64: 500.0, 256: 600.0})}  # fmt: skip
    (results / "flow-iterations-cpu.json").write_text(
        json.dumps({"device": "cpu: test", "sets": sets})
    )
    return results


def test_nearest_batch_is_taken_on_a_log_scale():
    assert cost_model.nearest([16, 64, 256], 100) == 64
    assert cost_model.nearest([16, 64, 256], 200) == 256
    assert cost_model.nearest(["64"], 1) == 64


@pytest.mark.parametrize("batch,compile_,rate,real", [(256, True, 250.0, 600.0),
                                                      (64, False, 140.0, 500.0),
                                                      (100, True, 220.0, 500.0)])  # fmt: skip
def test_flow_is_priced_from_the_bare_solver_over_real_iterations(tmp_path, ucf_paper, batch,
                                                                  compile_, rate, real):  # fmt: skip
    results = _flow_files(_dry_run(tmp_path / "results"))
    cfg = ucf_paper.replace(flow_batch=batch, flow_compile=compile_)
    pc = costs.plan_costs(cfg, results_dir=results)
    flow = next(s for s in pc.stages if s.row["stage"] == "rawframes")
    s = sizes(cfg, cfg.split)
    pairs = s.videos * s.frames - s.videos
    pixels = s.width * s.height / (320 * 240)
    # the measured rate on flow.py's frames (300 iterations a pair), carried to real frames
    # (``real`` iterations at this batch), to the H100's bandwidth and to the plan's frames
    on_h100 = rate * 300.0 / real * 3.35 / 4.8 / pixels
    assert math.isclose(flow.gpu_hours.value, pairs / on_h100 / 3600, rel_tol=1e-6)
    source = pc.bases.source("bandwidth_utilisation")
    assert "bare TV-L1" in source and "flow-batch-nvidia-h200.json" in source
    assert "cross-check" in source and "dry_run-h200.json" in source
    # the dry run's 50 pairs/s over its frames' 1,200 iterations, against 220 x 300 at batch 64
    assert f"{50 * 1200 / (220 * 300):.2f}x" in source
    assert "at the dry run's share (cross-check)" in flow.note
    mine = costs.plan_costs(cfg, results_dir=results, assume=["bandwidth_utilisation=0.5"])
    assert mine.bases.source("bandwidth_utilisation") == "set with --assume"
    mine_flow = next(s for s in mine.stages if s.row["stage"] == "rawframes")
    assert math.isclose(mine_flow.gpu_hours.value * 0.5,
                        flow.gpu_hours.value * pc.bases["bandwidth_utilisation"])  # fmt: skip


def test_without_iteration_counts_the_dry_run_prices_every_iteration(tmp_path, ucf_paper):
    results = _dry_run(tmp_path / "results")
    _flow_files(results)
    (results / "flow-iterations-cpu.json").unlink()  # the bare run's frames: count unknown
    b = cost_model.Bases.load(results)
    gpu_measured.apply_measured(b, ucf_paper)
    assert b.source("bandwidth_utilisation").startswith("measured: dry run TV-L1")
    p = PRESETS["paper"]
    assert b.tvl1_iterations(p, 256)[0] == cost_model.tvl1_nominal_iterations(p)

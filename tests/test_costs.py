"""The plan's cost model (twostream.study.costs): every stage priced, totals add up, figures say
what they rest on, the paper presets have one Table 1 cell, the cache holds only used taps."""

import math

import pytest

from twostream.core.config import StudyConfig
from twostream.core.runtime import project_root
from twostream.pipeline import graph as stages
from twostream.study import cost_model, costs
from twostream.study import plan as study_plan
from twostream.train.features import needed_taps

PARAMS = project_root() / "params"
FIGURES = ("wall_hours", "gpu_hours", "cpu_core_hours", "disk_gb")


@pytest.fixture(scope="module")
def ucf_paper():
    return StudyConfig.from_yaml(PARAMS / "ucf101-paper.yaml", data_root="/nonexistent/data")


@pytest.fixture(scope="module")
def ucf_paper_costs(ucf_paper):
    return costs.plan_costs(ucf_paper)


def test_plan_output_lists_a_cost_for_every_stage(capsys):
    from twostream.cli.main import main

    assert main(["plan", "--params", str(PARAMS / "ucf101-paper.yaml"),
                 "--set", "data_root=/nonexistent/data"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    cfg = StudyConfig.from_yaml(PARAMS / "ucf101-paper.yaml", data_root="/nonexistent/data")
    rows = study_plan.plan(cfg)
    lines = out.splitlines()
    for r in rows:
        line = next(ln for ln in lines if f" {r['what']} " in ln)
        # wall, GPU-h, CPU core-h, disk, GPU mem, RAM: six figures, each a value or "-"
        assert line.count("(e)") + line.count("(m)") + line.count("(c)") + line.count("(?)") + \
            line.count(" - ") >= 4, line  # fmt: skip
        assert ("GB (" in line) or (" - " in line)
    assert "TOTAL" in out and "minimum hardware:" in out and "assumptions (" in out
    assert "GPU memory:" in out and "RAM:" in out and "disk:" in out and "cores:" in out


def test_every_plan_row_has_a_priced_stage(ucf_paper, ucf_paper_costs):
    rows = study_plan.plan(ucf_paper)
    assert [s.row["what"] for s in ucf_paper_costs.stages] == [r["what"] for r in rows]
    for s in ucf_paper_costs.stages:
        assert s.disk_gb.value is not None and s.wall_hours.value is not None
        if s.row["stage"] in ("stream", "head"):
            assert s.gpu_hours.value > 0


def test_totals_equal_the_sum_of_the_stages(ucf_paper_costs):
    for name in FIGURES:
        total = ucf_paper_costs.total(name).value
        parts = sum(getattr(s, name).value or 0 for s in ucf_paper_costs.stages)
        assert math.isclose(total, parts, rel_tol=1e-12), name
    peak = ucf_paper_costs.peak("gpu_mem_gib").value
    assert peak == max(s.gpu_mem_gib.value or 0 for s in ucf_paper_costs.stages)


def test_the_placeholder_is_table3_priced_at_the_params_cell(ucf_paper, ucf_paper_costs):
    last = ucf_paper_costs.stages[-1]
    assert last.row["for"] == "Table 3 + audit"
    chosen = {"layer": ucf_paper.fusion_layer, "method": ucf_paper.fusion_method}
    listed = {(n, c) for _, n, c in study_plan.plan_entries(ucf_paper) if n is not None}
    expected = {(n, c) for _, n, c in study_plan.table3_nodes(ucf_paper, chosen)} - listed
    assert last.runs == len(expected) > 0


def test_gpu_figures_are_estimates_and_without_jsons_nothing_is_measured(ucf_paper, tmp_path):
    with_json = costs.plan_costs(ucf_paper)
    kinds = {s.row["stage"]: s.gpu_hours.kind for s in with_json.stages if s.gpu_hours.value}
    assert set(kinds.values()) == {"estimate"}  # no GPU benchmark committed
    rawframes = next(s for s in with_json.stages if s.row["stage"] == "rawframes")
    assert rawframes.disk_gb.kind == "measured" and "disk_usage.json" in rawframes.disk_gb.basis

    bare = costs.plan_costs(ucf_paper, results_dir=tmp_path)  # no benchmark JSON at all
    for s in bare.stages:
        for f in s.figures().values():
            assert f.kind != "measured", (s.row["what"], f)
            if f.value and f.kind != "computed":
                assert f.kind == "estimate"
    text = "\n".join(costs.format_plan(bare))
    assert "absent (fallback constants used)" in text and "input-pipeline-cpu.json" in text


def test_assumptions_are_printed():
    b = cost_model.Bases.load()
    names = dict(b.assumptions())
    assert "GPU" in names and "UCF101" in names and "BACKWARD_OVER_FORWARD" in names
    assert str(cost_model.UCF101_VIDEOS) in names["UCF101"]


@pytest.mark.parametrize("name", ["ucf101-paper", "hmdb51-paper"])
def test_paper_params_have_one_table1_cell_and_no_table2_sweep(name):
    cfg = StudyConfig.from_yaml(PARAMS / f"{name}.yaml", data_root="/nonexistent/data")
    nodes = study_plan.study_nodes(cfg)
    table1 = [n for why, n in nodes if why == "Table 1"]
    cells = {(n.get("layer"), n.get("method"), n.get("layers"), n.get("kernel")) for n in table1}
    assert len(cells) == 1 and len(table1) == len(cfg.head_seeds)
    table2 = [n for why, n in nodes if why == "Table 2"]
    assert set(table2) <= set(table1)  # Table 2's one cell is Table 1's run
    whats = [r["for"] for r in study_plan.plan(cfg)]
    assert "Table 2" not in whats  # listed once, under Table 1
    full = StudyConfig.from_yaml(PARAMS / f"{name.split('-')[0]}.yaml", data_root=cfg.data_root)
    # the paper presets also keep one stream seed (the full presets' three cost ~3x the
    # streams' GPU-hours)
    assert cfg.stream_seeds == (0,) and len(full.stream_seeds) == 3
    assert cfg.replace(table1_layers=full.table1_layers, table1_methods=full.table1_methods,
                       table2_layers=full.table2_layers, table2_kernels=full.table2_kernels,
                       stream_seeds=full.stream_seeds, carried_splits=full.carried_splits,
                       carried_seeds=full.carried_seeds) == full  # fmt: skip
    # ... and train one head the authors' way (batch of one video: launch-bound for hours)
    assert (cfg.carried_splits, cfg.carried_seeds) == ((1,), (0,))


@pytest.mark.parametrize("name", ["ucf101", "hmdb51", "ucf101-paper", "hmdb51-paper", "test"])
def test_cached_taps_are_the_taps_the_heads_read(name):
    cfg = StudyConfig.from_yaml(PARAMS / f"{name}.yaml", data_root="/nonexistent/data")
    nodes = study_plan.study_nodes(cfg)
    cached = {n.get("tap") for why, n in nodes if n.stage == "features"}
    read = {f.get("tap") for _, n in nodes if n.stage == "head" for f in stages.needs(n)}
    assert cached == read == set(needed_taps(cfg))


def test_a_tap_no_head_reads_is_not_cached():
    cfg = StudyConfig(table1_layers=("conv3_x", "fc"), table1_methods=(), fusion_layer="conv5_x")
    assert needed_taps(cfg) == ("conv5_x",)
    taps = {n.get("tap") for _, n in study_plan.study_nodes(cfg) if n.stage == "features"}
    assert taps == {"conv5_x"}


def test_feature_disk_is_the_shape_times_float16():
    cfg = StudyConfig.from_yaml(PARAMS / "ucf101.yaml", data_root="/nonexistent/data")
    # conv5_x of ResNet-101 at 224: 7 x 7 x 2048, T = 25, float16: 5.0176 MB per video
    assert costs._feature_bytes(cfg, "conv5_x") == 25 * 2048 * 7 * 7 * 2
    assert costs._feature_videos(cfg, 1) == cost_model.UCF101_VIDEOS


def test_head_flops_match_the_flop_counter_on_a_small_head():
    import torch
    import torch.nn.functional as F
    from torch.utils.flop_counter import FlopCounterMode

    from twostream.models.convlstm import build_head
    from twostream.models.streams import tap_channels

    cfg = StudyConfig(convlstm_hidden=16, num_segments=3, input_size=64)  # conv5_x grid 2 x 2
    c = tap_channels(cfg.backbone, "conv5_x")
    prof = cost_model.head_profile(cfg, "conv5_x", "sum", 2, 3, num_classes=5)
    head = build_head(kind="convlstm", in_channels=c, num_classes=5, fusion="sum", layers=2,
                      kernel=3, hidden=16)  # fmt: skip
    a = torch.randn(2, 3, c, 2, 2)
    with FlopCounterMode(display=False) as fwd:
        loss = F.cross_entropy(head(a, a), torch.zeros(2, dtype=torch.long))
    assert math.isclose(prof["fwd_flops"] * 2, fwd.get_total_flops(), rel_tol=0.1)
    assert math.isclose(prof["params"], sum(p.numel() for p in head.parameters()), rel_tol=0.1)
    del loss


def test_assumptions_can_be_set_and_are_printed_with_their_defaults(ucf_paper, capsys):
    from twostream.cli.main import main

    base = costs.plan_costs(ucf_paper)
    fast = costs.plan_costs(ucf_paper, assume=["gpu_utilisation=0.24", "head_utilisation=0.6"])
    assert fast.total("gpu_hours").value < base.total("gpu_hours").value
    assert fast.bases["gpu_utilisation"] == 0.24
    assert base.bases["gpu_utilisation"] != 0.24  # the committed GPU run's share, or the default
    for bad in (["nonsense=1"], ["gpu_utilisation=2"], ["pipeline=gpu"], ["read_mb_s"]):
        with pytest.raises(ValueError):
            costs.plan_costs(ucf_paper, assume=bad)
    assert main(["plan", "--params", str(PARAMS / "ucf101-paper.yaml"), "--set",
                 "data_root=/nonexistent/data", "--assume", "read_mb_s=500"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    for name in cost_model.ASSUMPTIONS:
        assert f"  {name} = " in out, name
    assert "read_mb_s = 500 " in out and "set with --assume" in out
    assert "gpu_utilisation = " in out and "default" in out


def test_the_loader_uses_num_workers(ucf_paper):
    def stream_hours(workers):
        pc = costs.plan_costs(ucf_paper.replace(num_workers=workers), assume=["pipeline=host"])
        s = next(s for s in pc.stages if s.row["what"] == "stream temporal, split 1")
        return s.gpu_hours.value, s.cores_to_feed

    h8, feed = stream_hours(8)
    h16, _ = stream_hours(16)
    assert feed > 16  # the host pipeline cannot feed the GPU with 8 or 16 workers...
    assert math.isclose(h8 / h16, 2.0, rel_tol=1e-9)  # ...so the loader bounds it: 1 / workers
    pc = costs.plan_costs(ucf_paper)  # device pipeline: a fraction of a core per GPU
    assert all((s.cores_to_feed or 0) < ucf_paper.num_workers for s in pc.stages)
    assert "8 loader workers (num_workers)" in pc.minimum_hardware()["cores"]


def test_evaluation_views_are_counted_as_they_are(ucf_paper):
    one = costs.plan_costs(ucf_paper)
    ten = costs.plan_costs(ucf_paper, assume=["val_views=250"])

    def stream(pc):
        return next(s for s in pc.stages if s.row["what"] == "stream spatial, split 1")

    # 1 view per validation video per epoch is a small cost; 250 views every epoch is not
    assert stream(ten).gpu_hours.value > 3 * stream(one).gpu_hours.value
    assert "val_views = 1/video" in stream(one).gpu_hours.basis


def test_loader_ram_is_workers_times_prefetch_times_batch(ucf_paper):
    pc = costs.plan_costs(ucf_paper, assume=["pipeline=host"])
    s = next(s for s in pc.stages if s.row["what"] == "stream temporal, split 1")
    eval_bs = 2 * ucf_paper.stream_batch_size // ucf_paper.num_segments
    item = ucf_paper.num_segments * ucf_paper.test_crops * 20 * 224 * 224 * 4  # ten-crop video
    expected = (ucf_paper.num_workers * 2 + 2) * eval_bs * item
    assert math.isclose(s.ram_gib.value * cost_model.GIB, expected, rel_tol=1e-9)
    dev = costs.plan_costs(ucf_paper)
    d = next(s for s in dev.stages if s.row["what"] == "stream temporal, split 1")
    assert d.ram_gib.value < s.ram_gib.value / 100  # JPEG bytes, not float32 views


def test_head_cache_reads_once_versus_every_epoch(ucf_paper):
    once = costs.plan_costs(ucf_paper, assume=["read_mb_s=234"])
    every = costs.plan_costs(ucf_paper, assume=["read_mb_s=234", "head_cache_reads=every_epoch"])

    def head(pc):
        return next(s for s in pc.stages if s.row["stage"] == "head")

    assert head(every).gpu_hours.value > 10 * head(once).gpu_hours.value
    per_video = 2 * costs._feature_bytes(ucf_paper, "conv5_x")
    assert math.isclose(head(once).ram_gib.value * cost_model.GIB,
                        cost_model.UCF101_VIDEOS * per_video, rel_tol=1e-9)  # fmt: skip


def test_an_authors_protocol_head_is_priced_as_one_evaluation_not_a_training(ucf_paper):
    """It is read from its validation-protocol twin (graph._run_head): pricing it as a
    training would double the audit's cost."""
    node = stages.head_node(1, "conv5_x", "sum", 2, 5)
    ours = costs._cost_head(ucf_paper, node, {}, cost_model.Bases(ucf_paper))
    authors = costs._cost_head(ucf_paper.replace(protocol="authors"), node, {},
                               cost_model.Bases(ucf_paper))  # fmt: skip
    assert authors.gpu_hours.value < ours.gpu_hours.value / 10


def _stage(pc, what):
    return next(s for s in pc.stages if s.row["what"] == what)


def test_every_launch_pays_its_start_up_and_torchrun_more(ucf_paper):
    def startup_s(pc, what="stream spatial, split 1"):
        s = _stage(pc, what)
        return (s.wall_hours.value - s.gpu_hours.value) * 3600

    plain = costs.plan_costs(ucf_paper)
    assert math.isclose(startup_s(plain), cost_model.STARTUP_S, rel_tol=1e-9)
    assert "start-up" in _stage(plain, "stream spatial, split 1").note
    off = costs.plan_costs(ucf_paper, assume=["startup_s=0", "torchrun_s=0"])
    assert math.isclose(startup_s(off), 0.0, abs_tol=1e-9)
    # more processes per launch -> more start-up: torchrun's own share, then waves of starts
    # once there are more processes than cores
    two = costs.plan_costs(ucf_paper, assume=["nproc=2", "torchrun_s=7"])
    assert math.isclose(startup_s(two), cost_model.STARTUP_S + 7, rel_tol=1e-9)
    head = next(s for s in two.stages if s.row["stage"] == "head")
    assert "torchrun_s = 7 s (set with --assume)" in cost_model.launch_startup(two.bases).basis
    assert head.wall_hours.value > head.gpu_hours.value
    cores = two.bases.cores
    many = costs.plan_costs(ucf_paper, assume=[f"nproc={2 * cores}", "torchrun_s=7"])
    assert math.isclose(startup_s(many), 2 * cost_model.STARTUP_S + 7, rel_tol=1e-9)
    assert startup_s(plain) < startup_s(two) < startup_s(many)
    # prepare runs as one process whatever nproc says
    assert math.isclose(_stage(two, "rawframes").wall_hours.value,
                        _stage(plain, "rawframes").wall_hours.value, rel_tol=1e-12)  # fmt: skip
    with pytest.raises(ValueError):
        costs.plan_costs(ucf_paper, assume=["nproc=0"])


def test_one_feature_launch_per_split_for_both_streams(ucf_paper):
    pc = costs.plan_costs(ucf_paper)
    feats = [
        s for s in pc.stages if s.row["stage"] == "features" and s.row["for"] == "feature cache"
    ]
    started = [s for s in feats if "start-up" in s.note]
    assert len(feats) >= 2 and len(started) == 1  # extract-features: one command, both streams


def _flow_cfg(ucf_paper):
    return ucf_paper.replace(flow_device="cpu", flow_backend="torch", flow_preset="paper")


def test_a_calibration_json_sets_the_cpu_flow_rate_and_its_source(ucf_paper, tmp_path):
    import json

    cfg = _flow_cfg(ucf_paper)
    committed = costs.plan_costs(cfg)
    rate = committed.bases.flow_cpu[("torch", "paper")]
    cal = tmp_path / "rehearsal.json"
    cal.write_text(json.dumps({"machine": {"processor": "cpu: Test CPU"}, "date": "today",
                               "calibration": {"flow_pairs_per_s_core": rate / 2,
                                               "flow_backend": "torch", "flow_preset": "paper"}}))  # fmt: skip
    slow = costs.plan_costs(cfg, calibration=cal)
    assert slow.bases.flow_cpu[("torch", "paper")] == rate / 2
    before, after = _stage(committed, "rawframes"), _stage(slow, "rawframes")
    assert after.cpu_core_hours.value > 1.5 * before.cpu_core_hours.value  # flow is most of it
    assert "measured by the calibration in rehearsal.json (cpu: Test CPU" in (
        after.cpu_core_hours.basis
    )
    text = "\n".join(costs.format_plan(slow))
    calibrated = f"torch/paper {rate / 2:.2f} pairs/s per core at 320x240: measured by the "
    assert calibrated + "calibration in rehearsal.json" in text
    assert slow.bases.flow_cpu_source(("opencv", "paper")).startswith("flow-cpu.json")
    # a flow benchmark JSON in flow-cpu.json's format works the same
    bench = tmp_path / "flow-here.json"
    bench.write_text(json.dumps({"device": "cpu: Other", "speed": [
        {"size": "320x240", "device": "cpu x1 thread", "backend": "torch", "preset": "paper",
         "pairs_per_s": rate * 2}]}))  # fmt: skip
    fast = costs.plan_costs(cfg, calibration=bench)
    assert _stage(fast, "rawframes").cpu_core_hours.value < before.cpu_core_hours.value
    assert "measured in flow-here.json" in _stage(fast, "rawframes").cpu_core_hours.basis
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(ValueError, match="holds no CPU TV-L1 rate"):
        costs.plan_costs(cfg, calibration=bad)


def test_a_head_trained_with_carried_state_is_priced_by_its_launches(ucf_paper):
    """One video per step: ~2,200 operators per step (head-ops-cpu.json), so its price
    follows gpu_op_us, far above the same head's FLOP price in batches, and the authors'
    protocol twin of it pays only the evaluation."""
    carried = stages.head_node(1, "conv5_x", "sum", 2, 5, train_state="carried")
    plain = stages.head_node(1, "conv5_x", "sum", 2, 5)

    def hours(node, cfg=ucf_paper, **assume):
        b = cost_model.Bases.load(assume=[f"{k}={v}" for k, v in assume.items()])
        return costs._cost_head(cfg, node, {}, b).gpu_hours.value

    assert hours(carried) > 5 * hours(plain)
    assert hours(carried, gpu_op_us=20) > 1.8 * hours(carried, gpu_op_us=10)
    assert hours(carried, gpu_op_us=0.001) == pytest.approx(hours(plain), rel=0.5)
    authors = ucf_paper.replace(protocol="authors")
    assert hours(carried, authors) < hours(carried) / 5

"""The stage graph: keys follow the declared fields, the plan lists what a study needs, a
tiny study is built through it once and then reused, and a new checkpoint makes the feature
cache stale."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest

from twostream.core.config import STAGES, StudyConfig, stage_fields
from twostream.pipeline import graph as stages
from twostream.study import plan as study_plan
from twostream.train.features import feature_path, read_cache_manifest


def test_flow_batch_and_compile_change_no_key():
    # execution knobs of prepare's TV-L1 on CUDA: the rawframes (and everything after them)
    # are the same bytes at any batch, compiled or not
    cfg = StudyConfig()
    assert "flow_batch" not in stage_fields("rawframes")
    for node in (stages.Node("rawframes"), stages.stream_node("temporal", 1)):
        for changed in (cfg.replace(flow_batch=256), cfg.replace(flow_compile=False)):
            assert stages.key(changed, node) == stages.key(cfg, node)


def test_every_field_declares_known_stages_and_keys_follow_them():
    for f in dataclasses.fields(StudyConfig):
        assert set(f.metadata.get("stages", ())) <= set(STAGES), f.name
    assert "flow_bound" in stage_fields("rawframes") and "lr_spatial" in stage_fields("stream")
    cfg = StudyConfig()
    node = stages.stream_node("spatial", 1)
    head = stages.head_node(1, "conv5_x", "sum", 1, 3)
    # a field of no stage changes no key; a head field changes only the head
    assert stages.key(cfg.replace(device="cpu"), node) == stages.key(cfg, node)
    assert stages.key(cfg.replace(convlstm_lr=0.5), node) == stages.key(cfg, node)
    assert stages.key(cfg.replace(convlstm_lr=0.5), head) != stages.key(cfg, head)
    # an upstream field changes every stage downstream of it
    changed = cfg.replace(flow_bound=10.0)
    assert stages.key(changed, stages.Node("dataset")) == stages.key(cfg, stages.Node("dataset"))
    for n in (stages.Node("rawframes"), node, stages.features_node("spatial", 1, "fc"), head):
        assert stages.key(changed, n) != stages.key(cfg, n), n
    # the synthetic knobs mean nothing for a real data set
    ucf = cfg.replace(dataset="ucf101")
    assert stages.key(ucf.replace(synth_classes=7), node) == stages.key(ucf, node)
    assert stages.needs(head) == (
        stages.features_node("spatial", 1, "conv5_x"),
        stages.features_node("temporal", 1, "conv5_x"),
    )


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    return StudyConfig(
        data_root=str(root), device="cpu", prep_workers=1, splits=(1,),
        table1_layers=("conv5_x", "fc"), table1_methods=("sum",), table2_layers=(1,),
        table2_kernels=(3,),
    )  # fmt: skip


@pytest.mark.slow
def test_a_tiny_study_through_the_graph_then_cached(tiny, capsys):
    from twostream.cli.main import main

    before = study_plan.plan(tiny)
    assert before and all(r["status"] != "cached" for r in before)
    stages.head(tiny)  # conv5_x / sum, 1 layer 3x3: needs every stage upstream
    after = {r["what"]: r["status"] for r in study_plan.plan(tiny)}
    assert after["dataset"] == after["rawframes"] == "cached"
    assert after["stream spatial, split 1"] == after["stream temporal, split 1"] == "cached"
    assert after["head conv5_x/sum 1 layer(s) 3x3, split 1"] == "cached"
    assert after["features spatial fc, split 1"] == "to run"
    assert after["head fc/sum 1 layer(s), split 1"] == "to run"
    # Table 2's cell is Table 1's (conv5_x, sum, 1 layer 3x3): listed once
    rows = [r["what"] for r in study_plan.plan(tiny)]
    assert rows.count("head conv5_x/sum 1 layer(s) 3x3, split 1") == 1
    assert main(["plan", "--set", f"data_root={tiny.data_root}", "--set", "splits=[1]",
                 "--set", "table1_layers=[conv5_x, fc]", "--set", "table1_methods=[sum]",
                 "--set", "table2_layers=[1]", "--set", "table2_kernels=[3]"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "cached" in out and "to run" in out and "stages:" in out


@pytest.mark.slow
def test_the_authors_protocol_head_is_read_from_ours_not_trained_again(tiny, monkeypatch):
    from twostream.train import engine

    ours = stages.head(tiny)

    def no_training(*a, **k):
        raise AssertionError("the authors' protocol head was trained again")

    monkeypatch.setattr(engine, "fit", no_training)
    authors = stages.head(tiny.replace(protocol="authors"))
    assert authors["run_dir"] != ours["run_dir"] and authors["selection"].startswith("test")
    assert authors["history"]["val_top1"].tolist() == ours["history"]["val_top1"].tolist()
    # without ours' test-selected checkpoint (a run from before it was kept) it trains
    (ours["run_dir"] / "checkpoint_best_test.pt").unlink()
    shutil.rmtree(authors["run_dir"])
    with pytest.raises(AssertionError, match="trained again"):
        stages.head(tiny.replace(protocol="authors"))


@pytest.mark.slow
def test_a_finished_head_is_reused_and_a_new_checkpoint_makes_features_stale(tiny):
    import torch

    from twostream.models.streams import load_stream
    from twostream.train.checkpoint import save_checkpoint

    first = stages.head(tiny)
    stamp = (first["run_dir"] / "results.json").stat().st_mtime_ns
    again = stages.head(tiny)
    assert again["run_dir"] == first["run_dir"] and again["top1"] == first["top1"]
    assert (first["run_dir"] / "results.json").stat().st_mtime_ns == stamp

    node = stages.features_node("temporal", 1, "conv5_x")
    folder = stages.output(tiny, node)
    assert stages.is_done(tiny, node)
    video = stages.feature_records(tiny, 1)[0].path
    old = np.load(feature_path(folder, video))
    ckpt = stages.output(tiny, stages.stream_node("temporal", 1)) / "checkpoint_best.pt"
    net = load_stream(ckpt)
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(0.5)  # other weights, same stream run folder
    payload = torch.load(ckpt, weights_only=False)
    save_checkpoint(ckpt, model=net, epoch=payload["epoch"], config=payload["config"],
                    extra=payload["extra"])  # fmt: skip
    assert not stages.is_done(tiny, node)  # the manifest names the old checkpoint
    stages.features(tiny, 1, ["conv5_x"])
    assert stages.is_done(tiny, node)
    assert read_cache_manifest(folder)["complete"]
    assert not np.array_equal(np.load(feature_path(folder, video)), old)


@pytest.mark.slow
def test_table3_builds_table1_itself_and_never_reads_a_results_table(tiny, tmp_path, monkeypatch):
    """Notebook 05 alone: Table 1's runs are built when missing, its cell is the validation
    argmax of those runs, and a table1_fusion.csv lying in results/ (another data set's, say)
    changes nothing."""
    from twostream.core.selection import select_cell
    from twostream.study import tables as study

    decoy = tmp_path / "results" / "tables"
    decoy.mkdir(parents=True)
    (decoy / "table1_fusion.csv").write_text("layer,method,top1\nfc,concat,1.0\n")
    monkeypatch.setenv("TWOSTREAM_RESULTS", str(tmp_path / "results"))
    cfg = tiny.replace(table1_methods=("sum", "max"))  # Table 1 cells no earlier test trained
    cells = [n for why, n in study_plan.study_nodes(cfg) if why == "Table 1"]
    assert not all(stages.is_done(cfg, n) for n in cells)
    final = study.final_comparison(cfg)
    assert all(stages.is_done(cfg, n) for n in cells)
    table1, _, chosen = study.fusion_ablation(cfg)
    conv = table1[table1["layer"] != "fc"].reset_index(drop=True)
    best = conv.iloc[select_cell(conv.to_dict("records"))]
    assert (final["chosen"]["layer"], final["chosen"]["method"]) == (best["layer"], best["method"])
    assert final["chosen"]["layer"] != "fc"  # the decoy's cell was never read
    # Table 3's ConvLSTM is the params file's fixed cell, and its reason says so
    assert (f"ConvLSTM {cfg.convlstm_layers} layer(s), {cfg.convlstm_kernel}x"
            f"{cfg.convlstm_kernel} kernels") in final["chosen"]["reason"]  # fmt: skip
    assert "not Table 2's choice" in final["chosen"]["reason"]
    methods = set(final["per_split"]["method"])
    assert {"two-stream ConvLSTM", "spatial-only ConvLSTM", "temporal-only ConvLSTM"} <= methods

"""Each notebook check passes on a well-formed output and fails when its invariant is broken."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from twostream.study import checks
from twostream.study.checks import CheckFailed


def test_splits():
    ok = pd.DataFrame(
        {"split": [1, 2, 3], "train": [9, 9, 9], "test": [3, 3, 3], "groups_on_both_sides": 0}
    )
    checks.splits(ok)
    with pytest.raises(CheckFailed, match="rows"):
        checks.splits(ok.iloc[:2])
    with pytest.raises(CheckFailed, match="groups on both sides"):
        checks.splits(ok.assign(groups_on_both_sides=[0, 1, 0]))
    with pytest.raises(CheckFailed, match="0 test"):
        checks.splits(ok.assign(test=[3, 0, 3]))


def test_manifest():
    good = [{"video": "a", "status": "ok", "frames": 5, "flows": 4}]
    checks.manifest(good)
    with pytest.raises(CheckFailed, match="status failed"):
        checks.manifest([{**good[0], "status": "failed", "error": "boom"}])
    with pytest.raises(CheckFailed, match="flow fields"):
        checks.manifest([{**good[0], "flows": 5}])
    with pytest.raises(CheckFailed, match="no video"):
        checks.manifest([])


def _run(epochs=2, n=3, k=4, loss=0.5):
    scores = np.full((n, k), 1.0 / k)
    hist = pd.DataFrame({"train_loss": [loss] * epochs, "val_loss": [loss] * epochs})
    return {"history": hist, "test": {"scores": scores}}


def test_stream_runs():
    checks.stream_runs({"spatial": _run(), "temporal": _run()}, epochs=2, test_videos=3)
    with pytest.raises(CheckFailed, match="epochs recorded"):
        checks.stream_runs({"spatial": _run(1), "temporal": _run()}, epochs=2, test_videos=3)
    with pytest.raises(CheckFailed, match="non-finite"):
        checks.stream_runs(
            {"spatial": _run(), "temporal": _run(loss=np.nan)}, epochs=2, test_videos=3
        )
    with pytest.raises(CheckFailed, match="scored test videos"):
        checks.stream_runs({"spatial": _run(n=2), "temporal": _run()}, epochs=2, test_videos=3)
    bad = _run()
    bad["test"]["scores"] = bad["test"]["scores"] * 2  # logits, not probabilities
    with pytest.raises(CheckFailed, match="probability"):
        checks.stream_runs({"spatial": _run(), "temporal": bad}, epochs=2, test_videos=3)


def test_ablation_grid_and_parameter_growth():
    grid = {"layers": [1, 2], "kernel": [3, 5]}
    df = pd.DataFrame(
        {
            "layers": [1, 1, 2, 2],
            "kernel": [3, 5, 3, 5],
            "top1": 0.5,
            "params": [10, 20, 30, 50],
        }
    )
    checks.ablation(df, name="t2", grid=grid, parameters_grow=["layers", "kernel"])
    with pytest.raises(CheckFailed, match="rows"):
        checks.ablation(df.iloc[:3], name="t2", grid=grid)
    with pytest.raises(CheckFailed, match="distinct cells"):
        checks.ablation(df.assign(kernel=[3, 3, 3, 5]), name="t2", grid=grid)
    with pytest.raises(CheckFailed, match="params shrink"):
        checks.ablation(df.assign(params=[10, 5, 30, 50]), name="t2", grid=grid,
                        parameters_grow=["kernel"])  # fmt: skip
    with pytest.raises(CheckFailed, match="outside"):
        checks.ablation(df.assign(top1=[0.5, 1.5, 0.5, 0.5]), name="t2", grid=grid)


def test_final_comparison_and_late_fusion_selection():
    per_split = pd.DataFrame(
        {
            "method": ["s", "t", "late", "convlstm"],
            "split": 1,
            "top1": 0.5,
            "n": 32,
            "late_fusion_weight": [np.nan, np.nan, 0.4, np.nan],
        }
    )
    checks.final_comparison(per_split, splits=[1], methods=4)
    with pytest.raises(CheckFailed, match="late-fusion weights"):
        checks.final_comparison(per_split.assign(late_fusion_weight=1.5), splits=[1], methods=4)
    with pytest.raises(CheckFailed, match="rows"):
        checks.final_comparison(per_split, splits=[1])  # six methods expected by default
    checks.late_fusion_selection(0.6, 0.5, 0.6)
    with pytest.raises(CheckFailed, match="not chosen on validation"):
        checks.late_fusion_selection(0.5, 0.4, 0.6)


OURS = "ours"
TEST_EPOCH = "epoch chosen on test (authors' code)"


def test_audit_baseline_is_table3s_model_and_test_selection_cannot_lose():
    per_split = pd.DataFrame(
        {"split": [1, 1], "protocol": [OURS, TEST_EPOCH], "top1": [0.40, 0.50], "n": 32}
    )
    table3 = pd.DataFrame({"split": [1], "method": ["two-stream ConvLSTM"], "top1": [0.40]})
    checks.audit(per_split, table3, ours=OURS)
    with pytest.raises(CheckFailed, match="scores below"):
        checks.audit(per_split.assign(top1=[0.50, 0.40]), ours=OURS)
    with pytest.raises(CheckFailed, match="is not Table 3's"):  # the audit used another model
        checks.audit(per_split, table3.assign(top1=[0.4375]), ours=OURS)


def test_every_accuracy_needs_n_and_an_interval_and_every_difference_a_verdict():
    ok = pd.DataFrame({"top1": [0.5], "n": [32], "top1_ci_low": [0.3], "top1_ci_high": [0.7],
                       "val_top1": [0.4], "val_n": [16], "val_top1_ci_low": [0.2],
                       "val_top1_ci_high": [0.6], "diff_chosen": [0.1],
                       "diff_chosen_ci_low": [-0.1], "diff_chosen_ci_high": [0.3],
                       "verdict_chosen": ["inconclusive"]})  # fmt: skip
    checks.intervals(ok, name="t")
    for drop in ("n", "top1_ci_high", "val_n", "diff_chosen_ci_low", "verdict_chosen"):
        with pytest.raises(CheckFailed, match="95%"):
            checks.intervals(ok.drop(columns=[drop]), name="t")
    # the table writer refuses such a table
    from twostream.study.results import save_table

    with pytest.raises(CheckFailed, match="no \\['n'"):
        save_table(ok.drop(columns=["n"]), "bad")


def test_the_chosen_cell_is_recomputed_from_validation():
    t = pd.DataFrame({"layer": ["a", "b", "fc"], "val_top1": [0.5, 0.6, 0.9],
                      "val_loss": [1.0, 1.0, 0.1], "top1": [0.9, 0.1, 0.9],
                      "chosen": [False, True, False]})  # fmt: skip
    checks.chosen_on_validation(t, name="t1")  # fc is not eligible; test top-1 is never read
    with pytest.raises(CheckFailed, match="validation argmax"):
        checks.chosen_on_validation(t.assign(chosen=[True, False, False]), name="t1")

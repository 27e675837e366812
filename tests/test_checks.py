"""Each notebook check passes on a well-formed output and fails when its invariant is broken."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from twostream import checks
from twostream.checks import CheckFailed


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
            "late_fusion_weight": [np.nan, np.nan, 0.4, np.nan],
        }
    )
    checks.final_comparison(per_split, splits=[1])
    with pytest.raises(CheckFailed, match="late-fusion weights"):
        checks.final_comparison(per_split.assign(late_fusion_weight=1.5), splits=[1])
    checks.late_fusion_selection(0.6, 0.5, 0.6)
    with pytest.raises(CheckFailed, match="not chosen on validation"):
        checks.late_fusion_selection(0.5, 0.4, 0.6)


def test_audit():
    per_split = pd.DataFrame(
        {
            "split": [1, 1],
            "question": ["epoch selection"] * 2,
            "protocol": ["best epoch on validation (ours)", "best epoch on test (authors' code)"],
            "top1": [40.0, 50.0],
        }
    )
    checks.audit(per_split)
    with pytest.raises(CheckFailed, match="scores below"):
        checks.audit(per_split.assign(top1=[50.0, 40.0]))

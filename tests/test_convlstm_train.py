from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from twostream import convlstm_train as ct
from twostream.config import StudyConfig
from twostream.convlstm import FusionConvLSTM, count_parameters
from twostream.errors import UserError
from twostream.features import FeatureCache, _save_npy, feature_path

K, T, C, H = 3, 4, 4, 3
CLASSES = ["C0", "C1", "C2"]


@dataclass(frozen=True)
class Rec:
    path: str
    label: int
    group: str | None = None


def _records():
    recs = [
        Rec(f"C{k}/v_C{k}_g{g:02d}_c01.avi", k, f"g{g:02d}") for k in range(K) for g in range(8)
    ]
    return {
        "train": [r for r in recs if int(r.group[1:]) < 5],
        "val": [r for r in recs if int(r.group[1:]) == 5],
        "test": [r for r in recs if int(r.group[1:]) >= 6],
    }


def _write_features(root: Path, recs, *, fc: bool = False) -> dict:
    """Class k lights up channel k in both streams (plus noise): learnable in a few epochs."""
    dirs = {"spatial": root / "spatial-x-tap-1", "temporal": root / "temporal-x-tap-2"}
    rng = np.random.default_rng(0)
    for r in recs:
        for s, d in dirs.items():
            x = rng.normal(0, 0.5, (T, C) if fc else (T, C, H, H)).astype(np.float32)
            x[:, r.label] += 1.0 if s == "spatial" else 0.5
            _save_npy(feature_path(d, r.path), x.astype(np.float16))
    return dirs


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny tensors: OpenMP fork/join on a shared 2-core machine costs more than it saves.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture()
def setup(tmp_path, monkeypatch):
    records = _records()
    every = [r for v in records.values() for r in v]
    maps = _write_features(tmp_path / "maps", every)
    vecs = _write_features(tmp_path / "vecs", every, fc=True)
    monkeypatch.setattr(
        ct, "ensure_features", lambda cfg, split, taps: {taps[0]: vecs if taps[0] == "fc" else maps}
    )
    monkeypatch.setattr(ct, "_records", lambda cfg, split: records)
    monkeypatch.setattr(ct, "_class_names", lambda cfg, recs: CLASSES)
    cfg = StudyConfig(
        data_root=str(tmp_path / "data"),
        device="cpu",
        convlstm_hidden=6,
        convlstm_epochs=4,
        convlstm_batch_size=4,
        convlstm_lr=1e-2,
    )
    return cfg, records, maps


def _history(res):
    return res["history"].drop(columns=["seconds"])


def test_train_end_to_end(setup):
    cfg, records, _ = setup
    res = ct.train_convlstm(cfg, split=1, layer="conv5_x", method="concat", layers=1, kernel=3)
    h = res["history"]
    assert list(h.columns) == [
        "epoch",
        "train_nll",
        "val_nll",
        "val_top1",
        "test_nll",
        "test_top1",
        "test_error",
        "seconds",
    ]
    assert h["epoch"].tolist() == [1, 2, 3, 4]
    assert h["train_nll"].iloc[-1] < h["train_nll"].iloc[0]
    assert res["values_per_video"] == T * H * H * 2 * C  # concat doubles the channels
    assert res["params"] > 0 and res["head"] == "convlstm" and res["selection"] == "validation"
    # selection on validation: best (val_top1, -val_nll), earliest on ties
    key = list(zip(h["val_top1"], -h["val_nll"]))
    assert res["best_epoch"] == 1 + max(range(4), key=lambda i: (key[i], -i))
    assert res["scores"].shape == (len(records["test"]), K)
    np.testing.assert_allclose(res["scores"].sum(1), 1.0, rtol=1e-5)
    assert res["test"]["top1"] == res["top1"] and res["test"]["confusion"].sum() == len(
        records["test"]
    )
    assert res["videos"] == [r.path for r in records["test"]]
    run = Path(res["run_dir"])
    assert run.parent == cfg.runs_dir and run.name.startswith(
        "convlstm-split1-conv5_x-concat-l1k3-"
    )
    for f in (
        "config.json",
        "metrics.csv",
        "checkpoint_last.pt",
        "checkpoint_best.pt",
        "scores_val.npz",
        "scores_test.npz",
        "results.json",
    ):
        assert (run / f).is_file(), f
    pd.testing.assert_frame_equal(
        pd.read_csv(run / "metrics.csv").drop(columns="seconds"), _history(res), check_dtype=False
    )
    assert (
        StudyConfig.from_dict(
            __import__("json").loads((run / "config.json").read_text())
        ).fusion_method
        == "concat"
    )
    # a complete stage-keyed run is reused, not retrained
    again = ct.train_convlstm(cfg, split=1, layer="conv5_x", method="concat", layers=1, kernel=3)
    assert again["run_dir"] == run and again["top1"] == res["top1"]
    pd.testing.assert_frame_equal(_history(again), _history(res), check_dtype=False)
    # and the reloaded best model scores the test set as the run did
    ev = ct.evaluate_run(again, cfg)
    np.testing.assert_allclose(ev["scores"], res["scores"], rtol=1e-5, atol=1e-6)


def test_resume_is_exact(setup, tmp_path):
    cfg, _, _ = setup
    kw = dict(split=1, layer="conv5_x", method="conv", layers=2, kernel=3)
    straight = ct.train_convlstm(cfg, run_dir=tmp_path / "a", **kw)
    ct.train_convlstm(cfg.replace(convlstm_epochs=2), run_dir=tmp_path / "b", **kw)
    resumed = ct.train_convlstm(cfg, run_dir=tmp_path / "b", resume=True, **kw)
    pd.testing.assert_frame_equal(_history(straight), _history(resumed))
    a = torch.load(tmp_path / "a" / "checkpoint_last.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "b" / "checkpoint_last.pt", weights_only=False)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_authors_protocol_selects_on_test(setup, tmp_path):
    cfg, _, _ = setup
    res = ct.train_convlstm(
        cfg.replace(protocol="authors", convlstm_epochs=5),
        split=1,
        layer="conv5_x",
        method="sum",
        layers=1,
        kernel=3,
        run_dir=tmp_path / "r",
    )
    h = res["history"]
    key = list(zip(h["test_top1"], -h["test_nll"]))
    assert res["best_epoch"] == 1 + max(range(5), key=lambda i: (key[i], -i))
    assert res["selection"].startswith("test")


def test_gradient_value_clipping_knob(setup, tmp_path, monkeypatch):
    cfg, _, _ = setup
    seen = []
    real = torch.nn.utils.clip_grad_value_
    monkeypatch.setattr(
        torch.nn.utils, "clip_grad_value_", lambda p, v: (seen.append(v), real(p, v))
    )
    ct.train_convlstm(
        cfg.replace(grad_clip=0.25, convlstm_epochs=1),
        split=1,
        layer="conv5_x",
        method="sum",
        layers=1,
        kernel=3,
        run_dir=tmp_path / "c",
    )
    assert seen and set(seen) == {0.25}
    seen.clear()
    ct.train_convlstm(
        cfg.replace(grad_clip=None, convlstm_epochs=1),
        split=1,
        layer="conv5_x",
        method="sum",
        layers=1,
        kernel=3,
        run_dir=tmp_path / "d",
    )
    assert seen == []


def test_evaluate_resets_state_unless_carried(setup):
    cfg, records, maps = setup
    torch.manual_seed(0)
    model = FusionConvLSTM(in_channels=C, num_classes=K, fusion="sum", hidden=5, dropout=0.0).eval()
    cache = FeatureCache(maps, records["test"])
    batched = ct.evaluate(model, ct.make_loader(cache, 4))
    single = ct.evaluate(model, ct.make_loader(cache, 1))
    np.testing.assert_allclose(batched["scores"], single["scores"], rtol=1e-5, atol=1e-6)
    alone = torch.softmax(model(*[t[None] for t in cache[3][:2]]), 1)[0].detach().numpy()
    np.testing.assert_allclose(single["scores"][3], alone, rtol=1e-5, atol=1e-6)
    carried = ct.evaluate(model, ct.make_loader(cache, 1), carry_state=True)
    np.testing.assert_allclose(carried["scores"][0], single["scores"][0], rtol=1e-5, atol=1e-6)
    assert not np.allclose(carried["scores"][1:], single["scores"][1:], atol=1e-4)
    with pytest.raises(UserError, match="batch size 1"):
        ct.evaluate(model, ct.make_loader(cache, 2), carry_state=True)
    assert not model.training


def test_fc_layer_is_the_fclstm_baseline(setup, tmp_path):
    cfg, _, _ = setup
    res = ct.train_convlstm(
        cfg.replace(convlstm_epochs=2),
        split=1,
        layer="fc",
        method="max",
        layers=1,
        kernel=5,
        run_dir=tmp_path / "fc",
    )
    assert res["head"] == "fclstm" and res["values_per_video"] == T * C
    assert res["feature_shape"] == [T, C]


def test_prefused_cache_trains_like_sum(setup, tmp_path):
    cfg, _, maps = setup
    kw = dict(split=1, layer="conv5_x", method="sum", layers=1, kernel=3)
    fused = ct.train_convlstm(
        cfg.replace(convlstm_epochs=2), prefuse_cache=True, run_dir=tmp_path / "p", **kw
    )
    both = ct.train_convlstm(cfg.replace(convlstm_epochs=2), run_dir=tmp_path / "q", **kw)
    assert fused["prefused"] and "fused" in fused["feature_dirs"]
    assert fused["values_per_video"] == both["values_per_video"] == T * H * H * C
    assert fused["params"] == both["params"]
    # same weights, same data up to the float16 rounding of the stored sum
    np.testing.assert_allclose(
        fused["history"]["train_nll"], both["history"]["train_nll"], rtol=2e-2
    )


def test_unknown_names_fail_clearly(setup):
    cfg, _, _ = setup
    with pytest.raises(UserError, match="known methods: concat"):
        ct.train_convlstm(cfg, split=1, layer="conv5_x", method="avg", layers=1, kernel=3)
    with pytest.raises(UserError, match="known taps"):
        ct.train_convlstm(cfg, split=1, layer="conv6_x", method="sum", layers=1, kernel=3)


def test_cli(setup, tmp_path, capsys):
    from twostream.cli import main

    cfg, _, _ = setup
    rc = main(
        [
            "train-convlstm",
            "--layer",
            "conv5_x",
            "--method",
            "max",
            "--kernel",
            "5",
            "--run-dir",
            str(tmp_path / "cli"),
            "--set",
            f"data_root={cfg.data_root}",
            "--set",
            "device=cpu",
            "--set",
            "convlstm_epochs=2",
            "--set",
            "convlstm_hidden=4",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0 and "selected epoch" in out and (tmp_path / "cli" / "metrics.csv").is_file()
    assert len(pd.read_csv(tmp_path / "cli" / "metrics.csv")) == 2
    assert main(["train-convlstm", "--layer", "conv9_x"]) == 2
    assert "known taps" in capsys.readouterr().err


def test_param_count_matches_model(setup, tmp_path):
    cfg, _, _ = setup
    res = ct.train_convlstm(
        cfg.replace(convlstm_epochs=1),
        split=1,
        layer="conv5_x",
        method="conv",
        layers=2,
        kernel=5,
        run_dir=tmp_path / "n",
    )
    model, info = ct.load_run_model(res["run_dir"])
    assert info["params"] == res["params"] == count_parameters(model)
    assert model.convlstm.num_layers == 2 and model.convlstm.kernel_size == 5

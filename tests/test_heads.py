"""The fusion + ConvLSTM head trainer on the engine, from a small synthetic feature cache:
selection on validation, resume, the authors' protocol, clipping, state reset, FC-LSTM,
pre-fused caches and parameter counts."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from twostream.core.config import StudyConfig
from twostream.core.errors import UserError
from twostream.models.convlstm import FusionConvLSTM, count_parameters
from twostream.train import head_trainer as heads
from twostream.train.features import FeatureCache, feature_path, prefuse, save_npy

K, T, C, H = 3, 4, 4, 3
CLASSES = ["C0", "C1", "C2"]
TIMINGS = ["seconds", "data_s", "compute_s", "samples_per_s"]


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
            save_npy(feature_path(d, r.path), x.astype(np.float16))
    return dirs


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny tensors: OpenMP fork/join on a shared 2-core machine costs more than it saves.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture()
def setup(tmp_path):
    records = _records()
    every = [r for v in records.values() for r in v]
    maps = _write_features(tmp_path / "maps", every)
    vecs = _write_features(tmp_path / "vecs", every, fc=True)
    cfg = StudyConfig(
        data_root=str(tmp_path / "data"),
        device="cpu",
        convlstm_hidden=6,
        convlstm_epochs=4,
        convlstm_batch_size=4,
        convlstm_lr=1e-2,
    )

    def train(cfg, run, *, layer="conv5_x", method="sum", layers=1, kernel=3, dirs=None):
        hcfg = cfg.replace(fusion_layer=layer, fusion_method=method, convlstm_layers=layers,
                           convlstm_kernel=kernel)  # fmt: skip
        dirs = dirs or (vecs if layer == "fc" else maps)
        return heads.train_head(hcfg, split=1, feature_dirs=dirs, records=records,
                                classes=CLASSES, run=run)  # fmt: skip

    return cfg, records, maps, train


def _history(res):
    return res["history"].drop(columns=TIMINGS)


def test_train_end_to_end(setup, tmp_path):
    cfg, records, _, train = setup
    res = train(cfg, tmp_path / "run", method="concat")
    h = res["history"]
    assert {"epoch", "lr", "train_loss", "val_loss", "val_top1", "test_loss", "test_top1"} <= set(h)
    assert h["epoch"].tolist() == [1, 2, 3, 4]
    assert h["train_loss"].iloc[-1] < h["train_loss"].iloc[0]
    assert res["values_per_video"] == T * H * H * 2 * C  # concat doubles the channels
    assert res["params"] > 0 and res["head"] == "convlstm" and res["selection"] == "validation"
    # selection on validation: best (val_top1, -val_loss), earliest on ties
    key = list(zip(h["val_top1"], -h["val_loss"], strict=True))
    assert res["best_epoch"] == 1 + max(range(4), key=lambda i: (key[i], -i))
    assert res["scores"].shape == (len(records["test"]), K)
    np.testing.assert_allclose(res["scores"].sum(1), 1.0, rtol=1e-5)
    assert res["test"]["top1"] == res["top1"]
    assert res["test"]["confusion"].sum() == len(records["test"])
    assert res["videos"] == [r.path for r in records["test"]]
    run = Path(res["run_dir"])
    for f in ("config.json", "metrics.csv", "checkpoint_last.pt", "checkpoint_best.pt",
              "scores_val.npz", "scores_test.npz", "results.json"):  # fmt: skip
        assert (run / f).is_file(), f
    pd.testing.assert_frame_equal(
        pd.read_csv(run / "metrics.csv").drop(columns=TIMINGS), _history(res), check_dtype=False
    )
    saved = StudyConfig.from_dict(__import__("json").loads((run / "config.json").read_text()))
    assert saved.fusion_method == "concat"
    # the reloaded best model scores the test set as the run did
    model, info = heads.load_head_model(run)
    assert info["best_epoch"] == res["best_epoch"]
    cache = FeatureCache({k: Path(v) for k, v in info["feature_dirs"].items()}, records["test"])
    ev = heads.evaluate_head(model, heads.make_loader(cache, 32))
    np.testing.assert_allclose(ev["scores"], res["scores"], rtol=1e-5, atol=1e-6)


def test_resume_is_exact(setup, tmp_path):
    cfg, _, _, train = setup
    kw = dict(method="conv", layers=2)
    straight = train(cfg, tmp_path / "a", **kw)
    train(cfg.replace(convlstm_epochs=2), tmp_path / "b", **kw)
    resumed = heads.train_head(
        cfg.replace(fusion_method="conv", convlstm_layers=2), split=1,
        feature_dirs=__import__("json").loads((tmp_path / "b" / "results.json").read_text())[
            "feature_dirs"], records=_records(), classes=CLASSES, run=tmp_path / "b", resume=True,
    )  # fmt: skip
    pd.testing.assert_frame_equal(_history(straight), _history(resumed))
    a = torch.load(tmp_path / "a" / "checkpoint_last.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "b" / "checkpoint_last.pt", weights_only=False)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_authors_protocol_selects_on_test(setup, tmp_path):
    cfg, _, _, train = setup
    res = train(cfg.replace(protocol="authors", convlstm_epochs=5), tmp_path / "r")
    h = res["history"]
    key = list(zip(h["test_top1"], -h["test_loss"], strict=True))
    assert res["best_epoch"] == 1 + max(range(5), key=lambda i: (key[i], -i))
    assert res["selection"].startswith("test")


@pytest.mark.parametrize("train_state", ["reset", "carried"])
def test_authors_protocol_read_from_its_validation_twin_equals_training_it(
    setup, tmp_path, train_state
):
    """The authors' protocol trains exactly as ours: read from our run (its history and the
    test-selected checkpoint it keeps), it gives the same epoch, history and scores as
    training it again, bit for bit -- and a twin that does not match is refused."""
    cfg, records, maps, _ = setup
    batch = 1 if train_state == "carried" else cfg.convlstm_batch_size
    base = cfg.replace(fusion_layer="conv5_x", fusion_method="sum", convlstm_epochs=5,
                       convlstm_batch_size=batch)  # fmt: skip
    kw = dict(split=1, feature_dirs=maps, records=records, classes=CLASSES,
              train_state=train_state)  # fmt: skip
    ours = heads.train_head(base, run=tmp_path / "ours", **kw)
    assert (tmp_path / "ours" / "checkpoint_best_test.pt").is_file()
    authors = base.replace(protocol="authors")
    trained = heads.train_head(authors, run=tmp_path / "trained", **kw)
    derived = heads.train_head(authors, run=tmp_path / "derived", twin=tmp_path / "ours", **kw)
    assert derived["best_epoch"] == trained["best_epoch"]
    assert np.array_equal(derived["scores"], trained["scores"])
    pd.testing.assert_frame_equal(_history(derived), _history(trained))
    assert derived["selection"].startswith("test") and ours["selection"] == "validation"
    # the check can fail: a twin trained differently gives other scores, a twin under the
    # authors' protocol or without its test checkpoint is refused
    other = heads.train_head(base.replace(convlstm_lr=3e-2), run=tmp_path / "other", **kw)
    wrong = heads.train_head(authors, run=tmp_path / "wrong", twin=tmp_path / "other", **kw)
    assert not np.array_equal(wrong["scores"], trained["scores"])
    assert other["selection"] == "validation"
    with pytest.raises(UserError, match="only under protocol 'authors'"):
        heads.train_head(base, run=tmp_path / "x", twin=tmp_path / "ours", **kw)
    (tmp_path / "ours" / "checkpoint_best_test.pt").unlink()
    with pytest.raises(UserError, match="checkpoint_best_test.pt"):
        heads.train_head(authors, run=tmp_path / "y", twin=tmp_path / "ours", **kw)


def test_gradient_value_clipping_knob(setup, tmp_path, monkeypatch):
    cfg, _, _, train = setup
    seen = []
    real = torch.nn.utils.clip_grad_value_
    monkeypatch.setattr(
        torch.nn.utils, "clip_grad_value_", lambda p, v: (seen.append(v), real(p, v))
    )
    train(cfg.replace(grad_clip=0.25, convlstm_epochs=1), tmp_path / "c")
    assert seen and set(seen) == {0.25}
    seen.clear()
    train(cfg.replace(grad_clip=None, convlstm_epochs=1), tmp_path / "d")
    assert seen == []


def test_evaluate_resets_state_unless_carried(setup):
    cfg, records, maps, _ = setup
    torch.manual_seed(0)
    model = FusionConvLSTM(in_channels=C, num_classes=K, fusion="sum", hidden=5, dropout=0.0).eval()
    cache = FeatureCache(maps, records["test"])
    batched = heads.evaluate_head(model, heads.make_loader(cache, 4))
    single = heads.evaluate_head(model, heads.make_loader(cache, 1))
    np.testing.assert_allclose(batched["scores"], single["scores"], rtol=1e-5, atol=1e-6)
    alone = torch.softmax(model(*[t[None] for t in cache[3][:2]]), 1)[0].detach().numpy()
    np.testing.assert_allclose(single["scores"][3], alone, rtol=1e-5, atol=1e-6)
    carried = heads.evaluate_head(model, heads.make_loader(cache, 1), carry_state=True)
    np.testing.assert_allclose(carried["scores"][0], single["scores"][0], rtol=1e-5, atol=1e-6)
    assert not np.allclose(carried["scores"][1:], single["scores"][1:], atol=1e-4)
    with pytest.raises(UserError, match="batch size 1"):
        heads.evaluate_head(model, heads.make_loader(cache, 2), carry_state=True)
    assert not model.training


def test_fc_layer_is_the_fclstm_baseline(setup, tmp_path):
    cfg, _, _, train = setup
    res = train(cfg.replace(convlstm_epochs=2), tmp_path / "fc", layer="fc", method="max", kernel=5)
    assert res["head"] == "fclstm" and res["values_per_video"] == T * C
    assert res["feature_shape"] == [T, C]


def test_prefused_cache_trains_like_sum(setup, tmp_path):
    cfg, records, maps, train = setup
    every = [r.path for recs in records.values() for r in recs]
    fused = train(cfg.replace(convlstm_epochs=2), tmp_path / "p",
                  dirs={"fused": prefuse(maps, "sum", every)})  # fmt: skip
    both = train(cfg.replace(convlstm_epochs=2), tmp_path / "q")
    assert fused["prefused"] and "fused" in fused["feature_dirs"]
    assert fused["values_per_video"] == both["values_per_video"] == T * H * H * C
    assert fused["params"] == both["params"]
    # same weights, same data up to the float16 rounding of the stored sum
    np.testing.assert_allclose(
        fused["history"]["train_loss"], both["history"]["train_loss"], rtol=2e-2
    )


def test_unknown_names_fail_clearly(setup, tmp_path):
    from twostream.pipeline import graph as stages

    cfg, _, _, train = setup
    with pytest.raises(UserError, match="known methods: concat"):
        train(cfg, tmp_path / "x", method="avg")
    with pytest.raises(UserError, match="known methods: concat"):
        stages.head(cfg, method="avg")
    with pytest.raises(UserError, match="known taps"):
        stages.head(cfg, layer="conv6_x")


def test_cli_rejects_an_unknown_tap_in_one_line(capsys):
    from twostream.cli.main import main

    assert main(["train-convlstm", "--layer", "conv9_x"]) == 2
    err = capsys.readouterr().err
    assert "known taps" in err and len(err.strip().splitlines()) == 1


def test_param_count_matches_model(setup, tmp_path):
    cfg, _, _, train = setup
    res = train(cfg.replace(convlstm_epochs=1), tmp_path / "n", method="conv", layers=2, kernel=5)
    model, info = heads.load_head_model(res["run_dir"])
    assert info["params"] == res["params"] == count_parameters(model)
    assert model.convlstm.num_layers == 2 and model.convlstm.kernel_size == 5


# ----------------------------------------------------------------------------- controls


def test_feature_cache_controls_are_fixed_per_video(setup):
    _, records, maps, _ = setup
    recs = records["test"]
    plain = FeatureCache(maps, recs, in_memory=True)
    mis = FeatureCache(maps, recs, misalign=True, in_memory=True)
    shuf = FeatureCache(maps, recs, shuffle_steps=True, in_memory=True)
    a0, b0, _ = plain[list(range(len(recs)))]
    a1, b1, _ = mis[list(range(len(recs)))]
    assert torch.equal(a1, a0) and not torch.equal(b1, b0)  # only the temporal maps move
    # the same cells at every time step and channel: a permutation of the grid
    t, c, h, w = b0.shape[1:]
    flat0, flat1 = b0[0].reshape(t * c, h * w), b1[0].reshape(t * c, h * w)
    perm = [int(torch.nonzero((flat0 == flat1[:, [j]]).all(0))[0]) for j in range(h * w)]
    assert sorted(perm) == list(range(h * w))
    assert torch.equal(flat0[:, perm], flat1)
    # batch, order and single-item access give the same draw
    assert torch.equal(mis[[2, 0]][1][1], b1[0]) and torch.equal(mis[0][1], b1[0])
    a2, b2, _ = shuf[list(range(len(recs)))]
    order = [int(torch.nonzero((a0[0] == a2[0][[s]]).flatten(1).all(1))[0]) for s in range(T)]
    assert sorted(order) == list(range(T)) and order != list(range(T))
    assert torch.equal(a2[0], a0[0][order]) and torch.equal(b2[0], b0[0][order])  # streams alike


def test_feature_cache_swaps_halves_in_a_fixed_half_of_the_videos(setup):
    """N2's control: the temporal maps of half of each class's videos come out with their
    grid's halves swapped, the others as they were, the spatial maps never; fixed per
    video, whatever the order of the records."""
    from twostream.train.features import swap_halves

    _, records, maps, _ = setup
    recs = [r for part in records.values() for r in part]
    plain = FeatureCache(maps, recs, in_memory=True)
    halves = FeatureCache(maps, recs, misalign="halves", in_memory=True)
    ids = list(range(len(recs)))
    a0, b0, _ = plain[ids]
    a1, b1, _ = halves[ids]
    assert torch.equal(a1, a0)
    swapped = [bool(torch.equal(b1[j], swap_halves(b0[j])) and not torch.equal(b1[j], b0[j]))
               for j in ids]  # fmt: skip
    kept = [bool(torch.equal(b1[j], b0[j])) for j in ids]
    assert all(s != k for s, k in zip(swapped, kept, strict=True))  # one or the other
    labels = np.array([r.label for r in recs])
    for k in range(K):  # exactly half of each class (8 videos each here), whatever the order
        assert sum(np.array(swapped)[labels == k]) == 4
    back = FeatureCache(maps, recs[::-1], misalign="halves", in_memory=True)
    assert torch.equal(back[ids][1].flip(0), b1)
    assert torch.equal(halves[[3, 1]][1][0], b1[3]) and torch.equal(halves[1][1], b1[1])
    with pytest.raises(UserError, match="unknown misalign mode"):
        FeatureCache(maps, recs, misalign="rows", in_memory=True)


def test_time_average_and_controls_train_and_are_recorded(setup, tmp_path, monkeypatch):
    cfg, records, maps, _ = setup
    monkeypatch.setattr(heads, "split_records", lambda cfg, split: records)
    kw = dict(split=1, feature_dirs=maps, records=records, classes=CLASSES)
    tavg = heads.train_head(cfg, run=tmp_path / "tavg", kind="tavg", **kw)
    assert tavg["head"] == "tavg" and tavg["top1"] > 1 / K  # learnable: channel k = class k
    model, info = heads.load_head_model(tavg["run_dir"])
    assert type(model).__name__ == "FusionTimeAverage"
    perm = heads.train_head(cfg, run=tmp_path / "perm", permute_labels=True, **kw)
    assert perm["permute_labels"] and not perm["misalign"]
    mis = heads.train_head(cfg, run=tmp_path / "mis", misalign="halves", **kw)
    assert mis["misalign"] == "halves"
    # re-evaluation keeps the run's misalignment: same scores as its own test pass
    ev = heads.reevaluate(mis["run_dir"])
    np.testing.assert_allclose(ev["scores"], mis["scores"], rtol=1e-5, atol=1e-6)
    # shuffled steps change a ConvLSTM's scores, not a time-average head's
    plain = heads.train_head(cfg, run=tmp_path / "plain", **kw)
    sh = heads.reevaluate(plain["run_dir"], shuffle_steps=True)
    assert not np.allclose(sh["scores"], plain["scores"], atol=1e-4)
    sh = heads.reevaluate(tavg["run_dir"], shuffle_steps=True)
    np.testing.assert_allclose(sh["scores"], tavg["scores"], rtol=1e-4, atol=1e-5)

"""The state-leak audit trains what the authors trained (issue 20, item 6): a head trained
with its recurrent state carried across training videos (``train_state: carried``) really
starts each video from the previous one's final state, with no gradient across videos; it
is a run of its own (the normal heads keep their folders); and the protocol audit
evaluates it beside the head trained with reset state."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_heads import CLASSES, _one_thread, _records, _write_features  # noqa: F401

from twostream.core.config import StudyConfig
from twostream.core.errors import UserError
from twostream.models.convlstm import FusionConvLSTM
from twostream.pipeline import graph as stages
from twostream.train import head_trainer as heads


@pytest.fixture()
def tiny_heads(tmp_path):
    records = _records()
    maps = _write_features(tmp_path / "maps", [r for v in records.values() for r in v])
    cfg = StudyConfig(data_root=str(tmp_path / "data"), device="cpu", convlstm_hidden=4,
                      convlstm_epochs=2, convlstm_batch_size=1, convlstm_lr=1e-2)  # fmt: skip
    return cfg, records, maps


def _spy_training_calls(monkeypatch):
    """Record, for every forward pass of a head in training mode, the state it started from
    and the final state it returned."""
    calls = []
    original = FusionConvLSTM._head

    def spy(self, x, state, return_state, **kw):
        logits, final = original(self, x, state, True, **kw)
        if self.training:
            calls.append({"start": state, "final": final, "batch": int(x.shape[0])})
        return (logits, final) if return_state else logits

    monkeypatch.setattr(FusionConvLSTM, "_head", spy)
    return calls


def _train(cfg, records, maps, run, train_state):
    return heads.train_head(cfg, split=1, feature_dirs=maps, records=records, classes=CLASSES,
                            run=run, train_state=train_state)  # fmt: skip


def _check_carried(calls, n_train: int, epochs: int) -> None:
    """One video per call; the first call starts from zeros (None); every later one from
    the previous call's final state, by value, cut from its graph."""
    assert len(calls) == n_train * epochs and all(c["batch"] == 1 for c in calls)
    assert calls[0]["start"] is None
    for prev, cur in zip(calls, calls[1:]):
        assert cur["start"] is not None, "a training video started from a reset state"
        for (h0, c0), (h1, c1) in zip(prev["final"], cur["start"], strict=True):
            assert torch.equal(h0, h1) and torch.equal(c0, c1)  # (1, hidden, H, W) each
            assert not h1.requires_grad and not c1.requires_grad  # detached: no gradient back
            assert h0.requires_grad  # the previous video's own state was in its graph


def test_carried_training_starts_each_video_from_the_previous_final_state(tiny_heads, tmp_path,
                                                                          monkeypatch):  # fmt: skip
    cfg, records, maps = tiny_heads
    calls = _spy_training_calls(monkeypatch)
    res = _train(cfg, records, maps, tmp_path / "carried", "carried")
    _check_carried(calls, len(records["train"]), cfg.convlstm_epochs)
    assert res["train_state"] == "carried" and "class order" in res["evaluation"]

    # the test can fail: a loop that resets the state for every video is caught
    def resetting(self, a, b):
        return self.net(a, b)  # the state starts at zero, nothing carried

    calls.clear()
    monkeypatch.setattr(heads.CarriedState, "forward", resetting)
    _train(cfg, records, maps, tmp_path / "resetting", "carried")
    with pytest.raises(AssertionError, match="reset state"):
        _check_carried(calls, len(records["train"]), cfg.convlstm_epochs)


def test_reset_training_starts_every_video_from_zero(tiny_heads, tmp_path, monkeypatch):
    cfg, records, maps = tiny_heads
    calls = _spy_training_calls(monkeypatch)
    res = _train(cfg.replace(convlstm_batch_size=4), records, maps, tmp_path / "reset", "reset")
    assert calls and all(c["start"] is None for c in calls)
    assert res["train_state"] == "reset" and res["evaluation"] == "state reset per video"
    with pytest.raises(AssertionError):
        _check_carried(calls, len(records["train"]), cfg.convlstm_epochs)


def _gradient_across_videos(carrier) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
    """Two videos through ``carrier``; the second one's loss backpropagated. Returns the
    first video's input gradient (None: no gradient crossed), the second video's logits and
    its logits from a zero state."""
    torch.manual_seed(0)
    first = torch.randn(1, 3, 4, 5, 5, requires_grad=True)  # (1, T, C, H, W)
    second = torch.randn(1, 3, 4, 5, 5, requires_grad=True)
    carrier(first, first)
    logits = carrier(second, second)  # (1, K)
    logits.sum().backward()
    with torch.no_grad():
        fresh = carrier.net(second, second)  # (1, K) from a zero state
    return first.grad, logits.detach(), fresh


def test_the_carried_state_changes_the_next_video_but_no_gradient_crosses(monkeypatch):
    head = FusionConvLSTM(in_channels=4, num_classes=3, hidden=4, dropout=0.0).eval()
    grad, logits, fresh = _gradient_across_videos(heads.CarriedState(head))
    assert grad is None  # the second video's loss reaches back to its own first step only
    assert not torch.allclose(logits, fresh)  # the state it started from mattered

    # the test can fail: without the detach, the gradient flows into the previous video
    monkeypatch.setattr(heads, "_detached", lambda state: state)
    head.zero_grad()
    grad, _, _ = _gradient_across_videos(heads.CarriedState(head))
    assert grad is not None and grad.abs().sum() > 0


def test_carried_training_refuses_what_the_authors_did_not_do(tiny_heads, tmp_path):
    cfg, records, maps = tiny_heads
    with pytest.raises(UserError, match="convlstm_batch_size 4"):
        _train(cfg.replace(convlstm_batch_size=4), records, maps, tmp_path / "a", "carried")
    with pytest.raises(UserError, match="unknown train_state"):
        _train(cfg, records, maps, tmp_path / "b", "sometimes")
    with pytest.raises(UserError, match="recurrent head"):
        stages.head_node(1, "conv5_x", "sum", 1, 3, kind="tavg", train_state="carried")


def test_the_saved_scores_of_a_carried_head_are_its_class_order_carried_evaluation(
    tiny_heads, tmp_path, monkeypatch
):
    cfg, records, maps = tiny_heads
    res = _train(cfg, records, maps, tmp_path / "carried", "carried")
    # reevaluate reads the run's split from its config: point it at the fixture's records
    monkeypatch.setattr(heads, "split_records", lambda cfg, split: records)
    again = heads.reevaluate(res["run_dir"], order="class", carry_state=True)
    reset = heads.reevaluate(res["run_dir"], order="list", carry_state=False)
    assert (again["scores"] == res["scores"]).all()  # same videos, same order, same values
    assert not (reset["scores"] == res["scores"]).all()
    best = res["history"].set_index("epoch").loc[res["best_epoch"]]
    assert best["test_top1"] == pytest.approx(res["top1"])  # history and results agree


# Run folders of the normal heads, as the code before train_state named them (test preset):
# a carried head must not move them.
BEFORE = {
    (1, "conv5_x", "sum", 0, ()): "convlstm-split1-conv5_x-sum-l1k3-c311c952",
    (2, "fc", "max", 3, ()): "fclstm-split2-fc-max-l1-s3-dfa227f3",
    (1, "conv5_x", "sum", 0, ("misalign",)): "convlstm-split1-conv5_x-sum-l1k3-misalign-28b201e6",
}


def test_the_carried_head_is_a_run_of_its_own_and_the_normal_heads_keep_theirs():
    cfg = StudyConfig()
    for (split, layer, method, seed, ctrl), name in BEFORE.items():
        kw = {c: True for c in ctrl}
        plain = stages.head_node(split, layer, method, 1, 3, seed=seed, **kw)
        assert plain == stages.head_node(split, layer, method, 1, 3, seed=seed,
                                         train_state="reset", **kw)  # fmt: skip
        assert stages.output(cfg, plain).name == name
        carried = stages.head_node(split, layer, method, 1, 3, seed=seed, train_state="carried",
                                   **kw)  # fmt: skip
        out = stages.output(cfg, carried).name
        assert out.startswith(name.rsplit("-", 1)[0] + "-carried-") and out != name
        assert stages.key(cfg, carried) != stages.key(cfg, plain)
        assert "carried state" in str(carried) and "carried" not in str(plain)
        # the carried run trains one video per batch; the normal one keeps the config's
        assert stages.head_config(cfg, carried).convlstm_batch_size == 1
        assert stages.head_config(cfg, plain).convlstm_batch_size == cfg.convlstm_batch_size


@pytest.mark.slow
def test_protocol_audit_on_the_test_preset_has_both_regimes(tmp_path_factory):
    """The test preset on split 1 (the cell given, Table 1 not trained): streams, features
    and the four heads of the audit (ours, authors' epoch, carried, carried + authors')."""
    from twostream.study import audit as A

    root = tmp_path_factory.mktemp("audit")
    cfg = StudyConfig.from_yaml("params/test.yaml", data_root=str(root), device="cpu",
                                prep_workers=1, splits=[1], table1_layers=["conv5_x"],
                                table1_methods=["sum"], table2_layers=[1], table2_kernels=[3])  # fmt: skip
    out = A.protocol_audit(cfg, chosen={"layer": "conv5_x", "method": "sum"})
    summary = out["summary"].set_index("protocol")
    names = [A.OURS, A.TEST_EPOCH, A.AT_TEST_CLASS, A.AT_TEST_RANDOM, A.AT_TEST_FULL,
             A.CARRIED_RESET, A.CARRIED_CLASS, A.CARRIED_RANDOM, A.FULL]  # fmt: skip
    assert list(summary.index) == names
    assert set(summary.loc[names[:5], "trained"]) == {A.RESET_TRAINED}
    assert set(summary.loc[names[5:], "trained"]) == {A.CARRIED_TRAINED}
    assert list(out["effects"]["question"]) == [A.Q_EPOCH, A.Q_LEAK_AT_TEST, A.Q_COST_AT_TEST,
                                                A.Q_LEAK, A.Q_FULL_AT_TEST, A.Q_FULL]  # fmt: skip
    assert out["effects"]["verdict_holm"].notna().all()
    leak = out["effects"].set_index("question").loc[A.Q_LEAK]
    assert (leak["a"], leak["b"]) == (A.CARRIED_RANDOM, A.CARRIED_CLASS)
    # the carried head's class-order row is its own saved evaluation, read back
    from twostream.study import tables as study

    carried = study.head_runs(cfg, split=1, layer="conv5_x", method="sum", train_state="carried")
    assert (out["correct"][A.CARRIED_CLASS][1] == study.stack(carried)).all()
    assert "-carried-" in str(carried[0]["run_dir"])
    claims = A.claims(cfg, audit=out)
    inflates = [c for c in claims["claim"] if c.startswith("the authors' protocol inflates")]
    assert len(inflates) == 3 and all("only at test" not in c for c in inflates)


def test_effects_pair_only_the_splits_both_protocols_have():
    """Carried heads on some splits only (carried_splits): each effect compares the splits
    both of its sides have, in split order, with those splits' clusters."""
    from twostream.study import audit as A

    ones, zeros = np.ones((1, 4)), np.zeros((1, 4))
    correct = {A.OURS: {1: ones, 2: zeros, 3: ones}, A.FULL: {2: ones}}
    clusters = {1: np.arange(4), 2: np.arange(4) + 10, 3: np.arange(4) + 20}
    a, b, ids, splits = A.paired(correct, clusters, A.OURS, A.FULL)
    assert splits == [2] and a[0] is zeros and b[0] is ones and (ids[0] == clusters[2]).all()
    a, b, ids, splits = A.paired(correct, clusters, A.OURS, A.OURS)
    assert splits == [1, 2, 3] and len(a) == len(b) == len(ids) == 3


def test_carried_splits_and_seeds_must_be_among_the_studys():
    with pytest.raises(UserError, match="carried_splits"):
        StudyConfig(splits=(1, 2), carried_splits=(3,))
    with pytest.raises(UserError, match="carried_seeds"):
        StudyConfig(head_seeds=(0,), carried_seeds=(1,))
    assert StudyConfig(splits=(1, 2), carried_splits=(2,)).carried_cells() == ((2,), (0,))
    assert StudyConfig(splits=(1, 2), head_seeds=(0, 1)).carried_cells() == ((1, 2), (0, 1))

"""The mechanism checks and negative controls (twostream.study.mechanisms) can fail: each verdict
is computed on outcomes where its mechanism is present and where it is broken, and flips."""

import numpy as np
import pytest

from twostream.core import verdicts as vd
from twostream.core.errors import UserError
from twostream.study import mechanisms as mech
from twostream.study import plan as study_plan

FAMS = ("motion", "binding", "order", "appearance")
PER_FAMILY = 60  # test videos per family and split
K = 18
R = 2000  # bootstrap resamples in these tests (the study uses 10,000): a shared machine


def _families(splits=2):
    return [np.repeat(FAMS, PER_FAMILY) for _ in range(splits)]


def _outcome(families, acc: dict[str, float], seed: int) -> list[np.ndarray]:
    """Per split (1, n) correctness with the given accuracy per family (exactly)."""
    rng = np.random.default_rng(seed)
    out = []
    for fam in families:
        c = np.zeros(len(fam), bool)
        for f, p in acc.items():
            idx = np.flatnonzero(fam == f)
            c[rng.choice(idx, size=int(round(p * len(idx))), replace=False)] = True
        out.append(c[None])
    return out


def _working(families):
    """Outcomes of an implementation in which every mechanism shows."""
    a = lambda **kw: {f: kw.get(f, 0.5) for f in FAMS}  # noqa: E731
    spec = {
        mech.SPATIAL: a(motion=0.15, binding=0.5, order=0.25, appearance=0.9),
        mech.TEMPORAL: a(motion=0.9, binding=0.5, order=0.5, appearance=0.25),
        mech.LATE: a(motion=0.9, binding=0.5, order=0.5, appearance=0.9),
        mech.TWO_STREAM: a(motion=0.9, binding=0.95, order=0.95, appearance=0.9),
        mech.POOLED_LSTM: a(motion=0.9, binding=0.5, order=0.9, appearance=0.9),
        mech.FC_LSTM: a(motion=0.9, binding=0.5, order=0.9, appearance=0.9),
        mech.TIME_AVERAGE: a(motion=0.9, binding=0.95, order=0.5, appearance=0.9),
        mech.SPATIAL_CONVLSTM: a(motion=0.3, binding=0.5, order=0.3, appearance=0.9),
        mech.TEMPORAL_CONVLSTM: a(motion=0.9, binding=0.5, order=0.95, appearance=0.25),
        mech.SHUFFLED: a(motion=0.9, binding=0.95, order=0.5, appearance=0.9),
        mech.MISALIGNED: a(motion=0.9, binding=0.5, order=0.95, appearance=0.9),
        mech.PERMUTED: {f: 1 / K for f in FAMS},
    }
    return {m: _outcome(families, acc, seed=i) for i, (m, acc) in enumerate(spec.items())}


def _pairs(families, **acc):
    """Within-pair correctness of the models N1 / N2 read: the two-stream ConvLSTM tells
    the pairs apart (95%), the shuffled one guesses on order, the misaligned one on binding."""
    spec = {mech.TWO_STREAM: {f: 0.95 for f in FAMS},
            mech.SHUFFLED: {**{f: 0.95 for f in FAMS}, "order": 0.5},
            mech.MISALIGNED: {**{f: 0.95 for f in FAMS}, "binding": 0.5}}  # fmt: skip
    spec.update(acc)
    return {m: _outcome(families, a, seed=20 + i) for i, (m, a) in enumerate(spec.items())}


def _verdicts(outcomes, families, pairs=None, **kw):
    pairs = _pairs(families) if pairs is None else pairs
    table = mech.evaluate_checks(
        outcomes, families, num_classes=K, within_pair=pairs, resamples=R, **kw
    )
    return dict(zip(table["check"], table["verdict"], strict=True)), table


def test_every_check_passes_when_its_mechanism_shows():
    fams = _families()
    verdicts, table = _verdicts(_working(fams), fams, val={mech.TEMPORAL_CONVLSTM: 0.6})
    assert verdicts == {"M1": "supported", "M2": "supported", "M3": "supported", "M3b": "supported",
                        "M4": "supported", "M5": "supported", "N1": "as expected",
                        "N2": "as expected", "N3": "as expected"}  # fmt: skip
    assert (table.set_index("check").loc[["M1", "M2", "N1"], "n"] == 2 * PER_FAMILY).all()
    assert table.set_index("check").loc["M5", "a"] == mech.TEMPORAL_CONVLSTM  # chosen on val
    for col in ("diff", "diff_ci_low", "diff_ci_high", "p_value", "p_holm", "n80_10_points"):
        assert table[col].notna().all()
    assert (table["verdict_holm"] == table["verdict"]).all()  # strong enough for Holm too
    rules = table.set_index("check")["rule"]
    assert rules["M1"] == vd.Superiority().describe()
    assert rules["N1"] == vd.AtChance(chance=0.5, margin=mech.PAIR_MARGIN).describe()
    assert rules["N3"] == vd.AtChance(chance=1 / K, margin=mech.TOP1_MARGIN).describe()
    assert "margin +-15.0 points" in rules["N1"] and "chance 50.0%" in rules["N2"]
    assert table.set_index("check").loc["N1", "quantity"].startswith("within-pair")
    from twostream.study import checks

    checks.intervals(table, name="mechanism_checks")  # every number with its n and interval


# each mechanism broken: the model claimed better is replaced by its baseline's outcomes
BROKEN = [("M1", mech.TEMPORAL, mech.SPATIAL), ("M2", mech.TWO_STREAM, mech.LATE),
          ("M3", mech.TWO_STREAM, mech.POOLED_LSTM), ("M3b", mech.TWO_STREAM, mech.FC_LSTM),
          ("M4", mech.TWO_STREAM, mech.TIME_AVERAGE)]  # fmt: skip


@pytest.mark.parametrize("check,model,baseline", BROKEN)
def test_mechanism_verdict_flips_when_broken(check, model, baseline):
    fams = _families()
    out = _working(fams)
    out[model] = [p.copy() for p in out[baseline]]
    verdicts, _ = _verdicts(out, fams)
    assert verdicts[check] == "inconclusive"
    # and reversed it is contradicted
    out = _working(fams)
    out[model], out[baseline] = out[baseline], out[model]
    assert _verdicts(out, fams)[0][check] == "contradicted"


def test_m5_uses_the_better_single_stream_on_validation():
    fams = _families()
    out = _working(fams)
    out[mech.TEMPORAL_CONVLSTM] = [p.copy() for p in out[mech.TWO_STREAM]]
    # the temporal-only ConvLSTM equals the two-stream one: M5 fails only if it is picked
    assert _verdicts(out, fams, val={mech.TEMPORAL_CONVLSTM: 0.9})[0]["M5"] == "inconclusive"
    assert _verdicts(out, fams, val={mech.SPATIAL_CONVLSTM: 0.9})[0]["M5"] == "supported"


def test_controls_flip_when_the_mechanism_leaks_through():
    fams = _families()
    out = _working(fams)
    pairs = _pairs(fams)
    pairs[mech.SHUFFLED] = [p.copy() for p in pairs[mech.TWO_STREAM]]  # order survives shuffling
    pairs[mech.MISALIGNED] = [p.copy() for p in pairs[mech.TWO_STREAM]]  # binding survives
    out[mech.PERMUTED] = [p.copy() for p in out[mech.TWO_STREAM]]  # learnt without labels?
    got, table = _verdicts(out, fams, pairs)
    assert got["N1"] == got["N2"] == got["N3"] == "not as expected"
    row = table.set_index("check").loc["N1"]
    assert row["diff_shuffled"] == 0 and row["chance"] == mech.CHANCE_ORDER


def test_a_control_at_zero_percent_fails():
    """Every video wrong is as far from chance as every video right: the old rule (pass
    whenever the interval reaches down to chance) let an all-wrong model pass."""
    fams = _families()
    out = _working(fams)
    out[mech.PERMUTED] = [np.zeros_like(p) for p in out[mech.PERMUTED]]
    pairs = _pairs(fams, **{mech.SHUFFLED: {f: 0.0 for f in FAMS},
                            mech.MISALIGNED: {f: 0.0 for f in FAMS}})  # fmt: skip
    got, table = _verdicts(out, fams, pairs)
    assert got["N1"] == got["N2"] == got["N3"] == "not as expected"
    assert (table.set_index("check").loc[["N1", "N2", "N3"], "diff_ci_high"] < 0).all()


def test_controls_read_the_within_pair_choice_not_18_way_top1():
    """The referee's N1: 18-way top-1 27.8% [18.1, 38.9] passed against 1/2 (its interval
    reaches below 1/2). The control reads the choice within the pair: at 1/2 it passes
    whatever the top-1, at 27.8% it fails."""
    fams = _families()
    out = _working(fams)
    out[mech.SHUFFLED] = _outcome(fams, {f: 0.278 for f in FAMS}, seed=3)
    assert _verdicts(out, fams)[0]["N1"] == "as expected"  # within pair at 1/2
    pairs = _pairs(fams, **{mech.SHUFFLED: {f: 0.278 for f in FAMS}})
    assert _verdicts(out, fams, pairs)[0]["N1"] == "not as expected"
    # without within-pair outcomes N1 and N2 are not computed from top-1
    table = mech.evaluate_checks(out, fams, num_classes=K, resamples=R)
    assert "N1" not in set(table["check"]) and "N3" in set(table["check"])


def test_within_pair_restricts_the_scores_to_the_pair():
    classes = ["TranslateRight", "TranslateLeft", "RightLeftRight", "LeftRightLeft", "ZoomIn"]
    partner = mech.pair_partner(classes)
    assert partner.tolist() == [1, 0, 3, 2, -1]  # ZoomOut absent: no partner
    scores = np.array(
        [
            [0.1, 0.2, 0.0, 0.0, 0.7],  # top-1 wrong, but right within its pair? no
            [0.1, 0.2, 0.0, 0.0, 0.7],  # label 1: 0.2 > 0.1, right within the pair
            [0.0, 0.0, 0.3, 0.3, 0.4],  # a tie within the pair: 1/2
            [0.0, 0.0, 0.0, 0.1, 0.9],
        ]
    )  # label 4, no partner: top-1 (right)
    got = mech.within_pair(scores, np.array([0, 1, 2, 4]), partner)
    assert got.tolist() == [0.0, 1.0, 0.5, 1.0]


def test_n2_inconclusive_when_misalignment_costs_nothing_measurable():
    """Misaligned no better than late fusion, but no worse than aligned either (the aligned
    model itself shows no binding advantage): not evidence that misalignment removed it."""
    fams = _families()
    out = _working(fams)
    out[mech.TWO_STREAM] = [p.copy() for p in out[mech.MISALIGNED]]
    pairs = _pairs(fams)
    pairs[mech.TWO_STREAM] = [p.copy() for p in pairs[mech.MISALIGNED]]
    got, table = _verdicts(out, fams, pairs)
    assert got["N2"] == "inconclusive"
    row = table.set_index("check").loc["N2"]
    assert row["verdict_aligned"] == "inconclusive" and row["p_value"] >= row["p_aligned"]


def test_checks_need_the_families():
    fams = [np.repeat(["motion"], 10)]
    out = {m: [np.ones((1, 10), bool)] for m in mech.METHODS_NEEDED}
    with pytest.raises(UserError, match="family 'binding'"):
        mech.evaluate_checks(out, fams, num_classes=K, resamples=R)


def test_missing_methods_skip_their_checks():
    fams = _families(1)
    out = {m: v for m, v in _working(fams).items() if m in (mech.SPATIAL, mech.TEMPORAL)}
    table = mech.evaluate_checks(out, fams, num_classes=K, resamples=R)
    assert list(table["check"]) == ["M1"]


def test_power_columns_are_80_percent_power():
    # the old n_for_10_points (73 at discordance 0.2) detected a true 10 points half the time;
    # 80% power needs 155 (vd.n_for_power)
    cols = mech.power_columns(120, 0.5, discordance=0.2)
    assert cols["n80_10_points"] == 155 and cols["underpowered"]
    assert cols["n80_designed"] == vd.n_for_power(0.5, 0.5)  # discordance >= effect
    assert not mech.power_columns(155, 0.5, discordance=0.2)["underpowered"]
    ctl = mech.power_columns(120, 0.5, chance=0.5)
    assert ctl["n80_10_points"] == vd.n_for_power_chance(0.1, 0.5) == 194
    fams = _families()
    table = _verdicts(_working(fams), fams)[1].set_index("check")
    m1 = table.loc["M1"]
    assert m1["n80_10_points"] == vd.n_for_power(0.1, max(m1["discordant"], 0.1))
    assert m1["underpowered"] == (m1["n"] < m1["n80_10_points"])
    assert "n_for_10_points" not in table.columns


def _families_table(outcomes, families):
    import pandas as pd

    from twostream.core import stats

    rows = []
    for m, parts in outcomes.items():
        for fam in [*FAMS, "all"]:
            masks = [np.ones(len(f), bool) if fam == "all" else f == fam for f in families]
            iv = stats.interval([p[:, k] for p, k in zip(parts, masks, strict=True)])
            rows.append({"method": m, "family": fam, "top1": iv["top1"], "n": iv["n"],
                         "top1_ci_low": iv["ci_low"], "top1_ci_high": iv["ci_high"]})  # fmt: skip
    return pd.DataFrame(rows)


def test_notebook_check_catches_a_verdict_its_interval_does_not_give():
    from twostream.study import checks

    fams = _families()
    out = _working(fams)
    _, table = _verdicts(out, fams)
    fam_table = _families_table(out, fams)
    checks.mechanisms(table, fam_table, splits=[1, 2])
    bad = table.copy()
    bad.loc[bad["check"] == "M1", "verdict"] = "inconclusive"  # its interval is above zero
    with pytest.raises(checks.CheckFailed, match="M1: verdict"):
        checks.mechanisms(bad, fam_table, splits=[1, 2])
    bad = table.copy()
    bad.loc[bad["check"] == "M2", "n"] = 5
    with pytest.raises(checks.CheckFailed, match="M2: n = 5"):
        checks.mechanisms(bad, fam_table, splits=[1, 2])
    bad = table.copy()
    bad.loc[bad["check"] == "N1", "verdict"] = "not as expected"  # its interval is at chance
    with pytest.raises(checks.CheckFailed, match="N1: verdict"):
        checks.mechanisms(bad, fam_table, splits=[1, 2])
    bad = table.copy()
    bad.loc[bad["check"] == "M3", "verdict_holm"] = "contradicted"
    with pytest.raises(checks.CheckFailed, match="M3: Holm"):
        checks.mechanisms(bad, fam_table, splits=[1, 2])


def test_plan_lists_every_head_the_checks_train_and_none_on_real_data():
    from twostream.core.config import StudyConfig

    cfg = StudyConfig()
    nodes = study_plan.mechanism_nodes(cfg)
    heads = [n for why, n in nodes if n.stage == "head"]
    assert len(heads) == len(mech.head_specs(cfg)) * len(cfg.splits) * len(cfg.head_seeds)
    args = [dict(n.args) for n in heads]
    assert sum(a.get("kind") == "tavg" for a in args) == len(cfg.splits)
    assert sum(a.get("misalign") == "halves" for a in args) == len(cfg.splits)
    # M3's baseline: an LSTM on the designed tap's pooled maps, same fusion (no kernel)
    pooled = [a for a in args if a.get("kind") == "pooled"]
    assert len(pooled) == len(cfg.splits)
    assert all(a["layer"] == cfg.fusion_layer and a["method"] == cfg.fusion_method
               and a["kernel"] == 0 for a in pooled)  # fmt: skip
    assert sum(a["layer"] == "fc" for a in args) == len(cfg.splits)  # M3b keeps the paper's
    assert sum(bool(a.get("permute_labels")) for a in args) == len(cfg.splits)
    planned = {r["what"] for r in study_plan.plan(cfg)}
    assert {str(n) for n in heads} <= planned
    assert not mech.applies(cfg.replace(synth_version=2))
    assert study_plan.mechanism_nodes(cfg.replace(dataset="ucf101")) == []


# ----------------------------------------------------------------------------- N2's swap


def test_swap_halves_on_a_hand_computed_grid():
    """The left and right W // 2 columns change places, each moved whole (not mirrored);
    an odd width keeps its middle column; rows, channels and steps are untouched."""
    import torch

    from twostream.train.features import swap_halves

    x = torch.arange(8.0).reshape(1, 1, 2, 4)  # (T, C, H, W): rows [0 1 2 3], [4 5 6 7]
    assert swap_halves(x).tolist() == [[[[2.0, 3.0, 0.0, 1.0], [6.0, 7.0, 4.0, 5.0]]]]
    y = torch.arange(5.0).reshape(1, 1, 1, 5)  # [0 1 2 3 4]: 2 stays in the middle
    assert swap_halves(y).tolist() == [[[[3.0, 4.0, 2.0, 0.0, 1.0]]]]
    assert torch.equal(swap_halves(swap_halves(x)), x)  # an involution
    assert torch.equal(x, torch.arange(8.0).reshape(1, 1, 2, 4))  # input left as it was


def test_swap_keeps_what_a_temporal_only_model_sees():
    """The swap is a fixed bijection of positions that moves each half whole: the values of
    each half (as a multiset, per step and channel) are those of the other half, so a model
    of the temporal map alone learns the same motions; the spatially pooled map, what a
    temporal-only head sees after its pooling, is unchanged."""
    import torch

    from twostream.train.features import swap_halves

    g = torch.Generator().manual_seed(0)
    b = torch.randn(3, 2, 6, 6, generator=g)  # (T, C, H, W): the smoke preset's 6x6 grid
    s = swap_halves(b)
    left, right = b[..., :3], b[..., 3:]
    assert torch.equal(s[..., :3], right) and torch.equal(s[..., 3:], left)
    key = lambda t: torch.sort(t.flatten(2), dim=-1).values  # noqa: E731
    assert torch.equal(key(s[..., :3]), key(right)) and torch.equal(key(s[..., 3:]), key(left))
    torch.testing.assert_close(s.mean(dim=(-2, -1)), b.mean(dim=(-2, -1)))


def test_swap_breaks_the_binding_only_in_half_the_videos():
    """Binding videos on a 1x2 grid: the spatial map holds the colour at each place (red 1,
    blue 2), the temporal map the turn there (cw +1, ccw -1). Class A: red cw and blue ccw,
    class B the reverse, each object on either side. What a model fusing at the same place
    can use is the set of (colour, turn) pairs per video. Swapping in every video leaves
    the classes told apart (relabelled); swapping half of each class's videos makes them
    indistinguishable."""
    import torch

    from twostream.train.features import swap_halves

    def video(cls: str, red_left: bool):
        red, blue = (1.0, +1.0), (2.0, -1.0)  # class A: red cw, blue ccw
        if cls == "B":
            red, blue = (1.0, -1.0), (2.0, +1.0)
        left, right = (red, blue) if red_left else (blue, red)
        a = torch.tensor([[[[left[0], right[0]]]]])  # (T=1, C=1, H=1, W=2)
        b = torch.tensor([[[[left[1], right[1]]]]])
        return a, b

    def pairs(a, b):  # what sits at each place, as a set
        return frozenset(zip(a.flatten().tolist(), b.flatten().tolist(), strict=True))

    def seen(cls, swap):  # the (colour, turn) sets a class shows over its videos
        out = set()
        for red_left in (True, False):
            for coin in (False, True):
                a, b = video(cls, red_left)
                out.add(pairs(a, swap_halves(b) if swap(coin) else b))
        return out

    assert seen("A", lambda coin: False).isdisjoint(seen("B", lambda coin: False))  # aligned
    assert seen("A", lambda coin: True).isdisjoint(seen("B", lambda coin: True))  # relabelled
    assert seen("A", lambda coin: coin) == seen("B", lambda coin: coin)  # the control

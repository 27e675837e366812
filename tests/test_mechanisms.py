"""The mechanism checks and negative controls (twostream.study.mechanisms) can fail: each verdict
is computed on outcomes where its mechanism is present and where it is broken, and flips."""

import numpy as np
import pytest

from twostream.core.errors import UserError
from twostream.study import mechanisms as mech
from twostream.study import plan as study_plan

FAMS = ("motion", "binding", "order", "appearance")
PER_FAMILY = 60  # test videos per family and split
K = 18


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
        mech.FC_LSTM: a(motion=0.9, binding=0.5, order=0.9, appearance=0.9),
        mech.TIME_AVERAGE: a(motion=0.9, binding=0.95, order=0.5, appearance=0.9),
        mech.SPATIAL_CONVLSTM: a(motion=0.3, binding=0.5, order=0.3, appearance=0.9),
        mech.TEMPORAL_CONVLSTM: a(motion=0.9, binding=0.5, order=0.95, appearance=0.25),
        mech.SHUFFLED: a(motion=0.9, binding=0.95, order=0.5, appearance=0.9),
        mech.MISALIGNED: a(motion=0.9, binding=0.5, order=0.95, appearance=0.9),
        mech.PERMUTED: {f: 1 / K for f in FAMS},
    }
    return {m: _outcome(families, acc, seed=i) for i, (m, acc) in enumerate(spec.items())}


def _verdicts(outcomes, families, **kw):
    table = mech.evaluate_checks(outcomes, families, num_classes=K, **kw)
    return dict(zip(table["check"], table["verdict"], strict=True)), table


def test_every_check_passes_when_its_mechanism_shows():
    fams = _families()
    verdicts, table = _verdicts(_working(fams), fams, val={mech.TEMPORAL_CONVLSTM: 0.6})
    assert verdicts == {"M1": "supported", "M2": "supported", "M3": "supported",
                        "M4": "supported", "M5": "supported", "N1": "as expected",
                        "N2": "as expected", "N3": "as expected"}  # fmt: skip
    assert (table.set_index("check").loc[["M1", "M2", "N1"], "n"] == 2 * PER_FAMILY).all()
    assert table.set_index("check").loc["M5", "a"] == mech.TEMPORAL_CONVLSTM  # chosen on val
    for col in ("diff", "diff_ci_low", "diff_ci_high"):
        assert table[col].notna().all()
    from twostream.study import checks

    checks.intervals(table, name="mechanism_checks")  # every number with its n and interval


# each mechanism broken: the model claimed better is replaced by its baseline's outcomes
BROKEN = [("M1", mech.TEMPORAL, mech.SPATIAL), ("M2", mech.TWO_STREAM, mech.LATE),
          ("M3", mech.TWO_STREAM, mech.FC_LSTM), ("M4", mech.TWO_STREAM, mech.TIME_AVERAGE)]  # fmt: skip


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
    out[mech.SHUFFLED] = [p.copy() for p in out[mech.TWO_STREAM]]  # order survives shuffling
    out[mech.MISALIGNED] = [p.copy() for p in out[mech.TWO_STREAM]]  # binding survives
    out[mech.PERMUTED] = [p.copy() for p in out[mech.TWO_STREAM]]  # learnt without labels?
    verdicts, table = _verdicts(out, fams)
    assert verdicts["N1"] == verdicts["N2"] == verdicts["N3"] == "not as expected"
    row = table.set_index("check").loc["N1"]
    assert row["diff_shuffled"] == 0 and row["chance"] == mech.CHANCE_ORDER


def test_n2_inconclusive_when_misalignment_costs_nothing_measurable():
    """Misaligned no better than late fusion, but no worse than aligned either (the aligned
    model itself shows no binding advantage): not evidence that misalignment removed it."""
    fams = _families()
    out = _working(fams)
    out[mech.TWO_STREAM] = [p.copy() for p in out[mech.MISALIGNED]]
    assert _verdicts(out, fams)[0]["N2"] == "inconclusive"


def test_checks_need_the_families():
    fams = [np.repeat(["motion"], 10)]
    out = {m: [np.ones((1, 10), bool)] for m in mech.METHODS_NEEDED}
    with pytest.raises(UserError, match="family 'binding'"):
        mech.evaluate_checks(out, fams, num_classes=K)


def test_missing_methods_skip_their_checks():
    fams = _families(1)
    out = {m: v for m, v in _working(fams).items() if m in (mech.SPATIAL, mech.TEMPORAL)}
    table = mech.evaluate_checks(out, fams, num_classes=K)
    assert list(table["check"]) == ["M1"]


def test_n_for_a_ten_point_difference_by_hand():
    # 1.96^2 * (0.2 - 0.01) / 0.01 = 72.99 -> 73 videos
    assert mech.n_for_difference(0.2) == 73
    assert mech.n_for_difference(0.05) == mech.n_for_difference(0.10)  # at least the difference
    assert mech.n_for_difference(0.4, diff=0.2) == int(np.ceil(1.959963984540054**2 * 0.36 / 0.04))


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


def test_plan_lists_every_head_the_checks_train_and_none_on_real_data():
    from twostream.core.config import StudyConfig

    cfg = StudyConfig()
    nodes = study_plan.mechanism_nodes(cfg)
    heads = [n for why, n in nodes if n.stage == "head"]
    assert len(heads) == len(mech.head_specs(cfg)) * len(cfg.splits) * len(cfg.head_seeds)
    args = [dict(n.args) for n in heads]
    assert sum(a.get("kind") == "tavg" for a in args) == len(cfg.splits)
    assert sum(bool(a.get("misalign")) for a in args) == len(cfg.splits)
    assert sum(bool(a.get("permute_labels")) for a in args) == len(cfg.splits)
    planned = {r["what"] for r in study_plan.plan(cfg)}
    assert {str(n) for n in heads} <= planned
    assert not mech.applies(cfg.replace(synth_version=2))
    assert study_plan.mechanism_nodes(cfg.replace(dataset="ucf101")) == []

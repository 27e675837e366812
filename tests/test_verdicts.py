"""The statistics core on hand-computed cases: closed forms, the old code's failures (each
now fixed), every verdict rule flipping when the evidence does, Holm, power, determinism."""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
import pytest
from scipy.stats import binom, binomtest

from twostream.core import verdicts as v


def wilson_closed_form(k, n, z=1.959963984540054):
    p, denom = k / n, 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def outcomes(rng, n, acc, seeds=1):
    return (rng.random((seeds, n)) < acc).astype(float)


def discordant(n, only_a, only_b, both=0):
    """One stratum (1, n) for A and B: only_a videos only A gets right, only_b only B."""
    a, b = np.zeros((1, n)), np.zeros((1, n))
    a[0, :only_a] = 1
    b[0, only_a : only_a + only_b] = 1
    a[0, only_a + only_b : only_a + only_b + both] = b[
        0, only_a + only_b : only_a + only_b + both
    ] = 1
    return a, b


# ---------------------------------------------------------------------------- statsmodels wrappers


@pytest.mark.parametrize("k,n", [(26, 108), (0, 10), (5, 10), (32, 32), (1, 3783)])
def test_wilson_is_the_closed_form(k, n):
    assert v.wilson(k, n) == pytest.approx(wilson_closed_form(k, n), abs=1e-12)
    assert all(math.isnan(x) for x in v.wilson(0, 0))


def test_wilson_hand_values_and_legacy():
    lo, hi = v.wilson(26, 108)
    assert (round(lo, 3), round(hi, 3)) == (0.170, 0.329)


@pytest.mark.parametrize(
    "b,c,p", [(0, 5, 2 * 0.5**5), (3, 3, 1.0), (0, 0, 1.0), (1, 9, 22 / 1024), (9, 1, 22 / 1024)]
)
def test_mcnemar_is_the_two_sided_binomial_tail(b, c, p):
    assert v.mcnemar_exact(b, c) == pytest.approx(p, rel=1e-12)


def test_mcnemar_against_scipy():
    for b, c in [(0, 5), (1, 9), (40, 62), (300, 360)]:
        assert v.mcnemar_exact(b, c) == pytest.approx(binomtest(b, b + c).pvalue, rel=1e-9)


# ---------------------------------------------------------------------------- paired tests


def pooled_zero():
    """Three configurations of 108 videos: B wins config 1 by 24 videos and loses configs 2
    and 3 by 12 each, so the pooled difference (mean over configurations) is exactly 0."""
    pairs = [
        discordant(108, 0, 24, both=50),
        discordant(108, 12, 0, 50),
        discordant(108, 12, 0, 50),
    ]
    return [a for a, _ in pairs], [b for _, b in pairs]


def test_pooled_zero_difference_is_not_significant():
    A, B = pooled_zero()
    # the old code read one row of a stacked claim: config 1 alone, p = 2 / 2**24
    assert v.mcnemar_exact(0, 24) < 1e-6
    r = v.compare(A, B, rule=v.Superiority())
    assert r["diff"] == 0 and r["p_value"] > 0.5 and r["verdict"] == "inconclusive"
    assert r["test"].startswith("exact McNemar")
    p, name = v.signflip(A, B)
    assert p > 0.5 and "random flips" in name
    # seed-averaged (fractional) outcomes and clusters take the sign-flip path: also p ~ 1
    frac = [np.vstack([b, b, 1 - b]).mean(0, keepdims=True) for b in B]
    frac_a = [np.vstack([a, a, 1 - a]).mean(0, keepdims=True) for a in A]
    clusters = [np.arange(108) // 9] * 3
    for kw in ({}, {"clusters": clusters}):
        r = v.compare(frac_a, frac, rule=v.Superiority(), resamples=2000, **kw)
        assert r["diff"] == pytest.approx(0, abs=1e-12) and r["p_value"] > 0.5
        assert r["test"].startswith("stratified sign-flip")


def test_exact_signflip_equals_mcnemar_on_one_stratum():
    a, b = discordant(60, 2, 9, both=30)  # 11 discordant videos: all 2**11 flips enumerated
    p, name = v.signflip(a, b)
    assert "exact" in name and p == pytest.approx(v.mcnemar_exact(2, 9), rel=1e-12)
    assert v.paired_test(a, b)[0] == pytest.approx(p, rel=1e-12)


# ---------------------------------------------------------------------------- cluster bootstrap


def clustered(rng, strata=3, groups=12, size=9, acc=0.6):
    """Videos of a group are nearly all right or all wrong (shared actor and background)."""
    out = []
    for _ in range(strata):
        group = np.repeat(rng.random(groups) < acc, size).astype(float)
        noise = rng.random(groups * size) < 0.1
        out.append(np.abs(group - noise)[None])
    return out, [np.repeat([f"class{g % 3}/g{g:02d}" for g in range(groups)], size)] * strata


def width(boot, level=0.95):
    lo, hi = boot.interval(level)
    return hi - lo


def test_cluster_interval_is_wider_on_clustered_data():
    rng = np.random.default_rng(0)
    A, ids = clustered(rng)
    B, _ = clustered(rng, acc=0.7)
    assert width(v.cluster_bootstrap(A, clusters=ids)) > 1.8 * width(v.cluster_bootstrap(A))
    assert width(v.cluster_bootstrap(A, B, clusters=ids)) > 1.8 * width(v.cluster_bootstrap(A, B))
    assert v.compare(A, B, rule=v.Superiority(), clusters=ids)["clusters"] == 36


def test_each_video_its_own_cluster_by_default_and_draws_are_deterministic():
    rng = np.random.default_rng(1)
    A = [outcomes(rng, 108, 0.6, seeds=3) for _ in range(3)]
    B = [outcomes(rng, 108, 0.7, seeds=2) for _ in range(3)]
    d0 = v.cluster_bootstrap(A, B).draws
    assert np.array_equal(d0, v.cluster_bootstrap(A, B, clusters=[np.arange(108)] * 3).draws)
    assert np.array_equal(d0, v.cluster_bootstrap(A, B).draws)
    assert not np.array_equal(d0, v.cluster_bootstrap(A, B, seed=1).draws)


def test_bootstrap_is_fast():
    rng = np.random.default_rng(2)
    A = [outcomes(rng, 108, 0.6, seeds=3) for _ in range(3)]
    B = [outcomes(rng, 108, 0.7, seeds=3) for _ in range(3)]
    best = math.inf
    for _ in range(3):  # best of three: a busy machine must not fail the test
        t = time.perf_counter()
        boot = v.cluster_bootstrap(A, B)
        best = min(best, time.perf_counter() - t)
    assert boot.draws.shape == (v.BOOTSTRAP,) and best < 1.0


def test_seeds_are_drawn_inside_the_interval():
    rng = np.random.default_rng(3)
    # three training runs that differ a lot: accuracy 0.45, 0.60, 0.75 on every split
    A = [np.vstack([outcomes(rng, 108, acc) for acc in (0.45, 0.6, 0.75)]) for _ in range(3)]
    averaged = [x.mean(0, keepdims=True) for x in A]  # seed averages as one fractional row
    resampled, one = v.cluster_bootstrap(A), v.cluster_bootstrap(A, seeds="one")
    fixed = v.cluster_bootstrap(averaged)
    assert resampled.estimate == pytest.approx(fixed.estimate)
    assert width(fixed) < width(resampled) < width(one)
    assert width(resampled) > 1.5 * width(fixed)


def test_shared_strata_move_together():
    rng = np.random.default_rng(4)
    a, b = outcomes(rng, 108, 0.6), outcomes(rng, 108, 0.7)
    A, B = [a] * 3, [b] * 3  # three configurations that are, here, the same runs on one split
    shared = width(v.cluster_bootstrap(A, B, shared=True))
    assert shared == pytest.approx(width(v.cluster_bootstrap(a, b)), rel=0.05)
    assert shared > 1.4 * width(v.cluster_bootstrap(A, B))
    with pytest.raises(ValueError):
        v.cluster_bootstrap([a, a[:, :100]], shared=True)


@pytest.mark.parametrize(
    "a,b,kw",
    [
        (np.ones(10), np.ones(9), {}),
        (np.full(10, 2.0), np.ones(10), {}),
        (np.ones(10), np.ones(10), {"clusters": np.arange(9)}),
        (np.ones(10), np.ones(10), {"seeds": "some"}),
    ],
)
def test_bad_inputs_raise(a, b, kw):
    with pytest.raises(ValueError):
        v.cluster_bootstrap(a, b, **kw)


# ---------------------------------------------------------------------------- verdict rules

EXAMPLES = {
    "superiority": v.Superiority(),
    "equivalence": v.Equivalence(margin=0.015),
    "not_greater": v.NotGreater(margin=0.015),
    "at_chance": v.AtChance(chance=0.10, margin=0.03),
}
CASES = {  # (lo, hi) at the rule's level -> verdict
    "superiority": [((0.01, 0.05), "supported"), ((-0.05, -0.01), "contradicted"),
                    ((-0.01, 0.02), "inconclusive")],
    "equivalence": [((0.003, 0.012), "supported"), ((0.02, 0.03), "contradicted"),
                    ((-0.03, -0.02), "contradicted"), ((0.003, 0.02), "inconclusive")],
    "not_greater": [((-0.02, 0.01), "supported"), ((0.02, 0.05), "contradicted"),
                    ((0.005, 0.012), "supported"), ((0.0, 0.03), "inconclusive")],
    "at_chance": [((0.09, 0.12), "supported"), ((0.0, 0.05), "contradicted"),
                  ((0.15, 0.2), "contradicted"), ((0.105, 0.12), "contradicted"),
                  ((0.05, 0.12), "inconclusive")],
}  # fmt: skip


def test_registry_names_every_rule():
    assert set(v.RULES) == set(EXAMPLES) == set(CASES)
    assert all(isinstance(EXAMPLES[k], cls) for k, cls in v.RULES.items())


@pytest.mark.parametrize("name", sorted(v.RULES))
def test_rule_verdicts(name):
    rule = EXAMPLES[name]
    for (lo, hi), expected in CASES[name]:
        assert rule.verdict(lo, hi) == expected, (lo, hi)
    assert rule.verdict(float("nan"), 0.1) == "inconclusive"


@pytest.mark.parametrize("name", sorted(v.RULES))
def test_rule_describes_itself_and_is_frozen(name):
    rule = EXAMPLES[name]
    text = rule.describe()
    assert text.startswith(name.replace("_", " ").replace("at chance", "control at chance"))
    assert f"{rule.level:.0%} interval" in text
    for word in ("supported", "contradicted") if name != "at_chance" else ("passes", "fails"):
        assert word in text
    if hasattr(rule, "margin"):
        assert f"{100 * rule.margin:.1f} points" in text
    with pytest.raises(dataclasses.FrozenInstanceError):
        rule.level = 0.5
    assert rule == dataclasses.replace(rule) and rule.describe() == text


@pytest.mark.parametrize("name", sorted(v.RULES))
def test_rule_p_value_agrees_with_its_verdict(name):
    """p <= ALPHA exactly when the verdict is decisive, up to the resampling resolution."""
    rule, rng = EXAMPLES[name], np.random.default_rng(5)
    for mu in np.linspace(-0.06, 0.16, 45):
        ev = v.Bootstrap(mu, mu + 0.01 * rng.standard_normal(20_000))
        verdict = rule.verdict(*ev.interval(rule.level))
        p = rule.p(ev, verdict)
        if verdict == "inconclusive":
            assert p > v.ALPHA - 0.003, (mu, p)
        else:
            assert p <= v.ALPHA + 0.003, (mu, verdict, p)


def test_equivalence_margin_acceptance():
    # the referee's interval [+0.3, +1.2] points (90%): inside +-1.5, straddling +1.0,
    # wholly outside +-0.2
    lo, hi = 0.003, 0.012
    assert v.Equivalence(margin=0.015).verdict(lo, hi) == "supported"
    assert v.Equivalence(margin=0.010).verdict(lo, hi) == "inconclusive"
    assert v.Equivalence(margin=0.002).verdict(lo, hi) == "contradicted"
    # the old rule said contradicted as soon as 0 was excluded, whatever the margin
    assert "margin +-1.5 points" in v.Equivalence(margin=0.015).describe()


@pytest.mark.parametrize("kw", [{"margin": 2.0}, {"margin": 0.0}, {"margin": 0.02, "level": 1.0}])
def test_rule_parameters_are_checked(kw):
    with pytest.raises(ValueError):
        v.Equivalence(**kw)
    with pytest.raises(ValueError):
        v.Superiority(side="sideways")
    with pytest.raises(ValueError):
        v.AtChance(chance=2.0, margin=0.02)


# ---------------------------------------------------------------------------- controls


def test_control_all_wrong_fails():
    r = v.at_chance(np.zeros(108), chance=1 / 8, margin=0.05)
    assert r["verdict"] == "contradicted" and r["outcome"] == "not as expected"
    assert r["p_value"] < v.ALPHA and r["test"].endswith("(the Wilson interval's dual)")
    assert v.holm_verdicts([r])[0]["outcome_holm"] == "not as expected"
    # several seeds and splits take the bootstrap path: still fails
    r = v.at_chance([np.zeros((3, 108))] * 3, chance=1 / 8, margin=0.05, resamples=2000)
    assert r["outcome"] == "not as expected" and "bootstrap" in r["test"]


def test_control_at_chance_passes_and_above_chance_fails():
    at = np.zeros(1000)
    at[:125] = 1  # 12.5% of 1,000 at chance 1/8: the 95% interval is about +-2 points
    r = v.at_chance(at, chance=1 / 8, margin=0.03)
    assert r["outcome"] == "as expected" and r["verdict"] == "supported"
    assert r["p_value"] < v.ALPHA
    assert v.at_chance(at, chance=1 / 8, margin=0.01)["outcome"] == "inconclusive"
    above = np.zeros(108)
    above[:60] = 1
    r = v.at_chance(above, chance=1 / 8, margin=0.05)
    assert r["outcome"] == "not as expected" and r["ci_low"] > 1 / 8


# ---------------------------------------------------------------------------- compare


@pytest.mark.parametrize("seeds", [1, 3])
def test_superiority_flips_with_the_evidence(seeds):
    rng = np.random.default_rng(6)
    A = [outcomes(rng, 108, 0.55, seeds) for _ in range(3)]
    B = [outcomes(rng, 108, 0.80, seeds) for _ in range(3)]
    rule = v.Superiority()
    r = v.compare(A, B, rule=rule)
    assert r["verdict"] == "supported" and r["ci_low"] > 0 and r["p_value"] < 0.001
    same = v.compare(A, A, rule=rule)
    assert same["verdict"] == "inconclusive" and same["diff"] == 0 and same["p_value"] == 1.0
    swapped = v.compare(B, A, rule=rule)
    assert swapped["verdict"] == "contradicted" and swapped["ci_high"] < 0
    assert v.compare(B, A, rule=v.Superiority(side="less"))["verdict"] == "supported"


def test_compare_reports_every_field():
    rng = np.random.default_rng(7)
    A = [outcomes(rng, 108, 0.60, 3) for _ in range(3)]
    B = [outcomes(rng, 108, 0.61, 1) for _ in range(3)]
    ids = [np.arange(108) // 4] * 3
    r = v.compare(A, B, rule=v.Equivalence(margin=0.05), clusters=ids, resamples=2000)
    assert (r["n"], r["clusters"], r["strata"], r["seeds_a"], r["seeds_b"]) == (324, 81, 3, 3, 1)
    assert r["diff"] == pytest.approx(r["b_top1"] - r["a_top1"])
    assert r["ci_low"] <= r["ci90_low"] <= r["diff"] <= r["ci90_high"] <= r["ci_high"]
    assert r["rule"] == v.Equivalence(margin=0.05).describe()
    assert r["test"].startswith("TOST") and r["test_zero"].startswith("stratified sign-flip")
    assert r["verdict"] in v.VERDICTS and 0 < r["p_value"] <= 1 and 0 < r["p_zero"] <= 1
    assert "ci90_low" not in v.compare(A, B, rule=v.Superiority(), resamples=500)


def test_same_inputs_same_output():
    rng = np.random.default_rng(8)
    A = [outcomes(rng, 108, 0.6, 3) for _ in range(3)]
    B = [outcomes(rng, 108, 0.65, 3) for _ in range(3)]
    ids = [np.arange(108) // 9] * 3
    for rule in EXAMPLES.values():
        first = v.compare(A, B, rule=rule, clusters=ids, resamples=2000)
        assert first == v.compare(A, B, rule=rule, clusters=ids, resamples=2000)
    assert v.at_chance(A, chance=0.5, margin=0.1) == v.at_chance(A, chance=0.5, margin=0.1)


# ---------------------------------------------------------------------------- multiplicity


def test_holm_textbook():
    # sorted: 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04, then
    # running maximum: 0.02, 0.03, 0.06, 0.06
    adjusted, reject = v.holm([0.01, 0.04, 0.03, 0.005])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert reject.tolist() == [True, False, False, True]
    assert v.holm([])[0].size == 0
    from statsmodels.stats.multitest import multipletests

    p = np.random.default_rng(10).random(40) ** 3
    reject, adjusted, _, _ = multipletests(p, alpha=v.ALPHA, method="holm")
    assert v.holm(p)[0] == pytest.approx(adjusted, abs=1e-12)
    assert (v.holm(p)[1] == reject).all()


def test_holm_verdicts_withdraw_what_the_family_cannot_afford():
    rows = [
        {"claim": "a", "p_value": 0.01, "verdict": "supported", "ci_low": 0.01},
        {"claim": "b", "p_value": 0.04, "verdict": "contradicted"},
        {"claim": "c", "p_value": 0.03, "verdict": "inconclusive"},
        {"claim": "d", "p_value": 0.005, "verdict": "supported"},
        {"claim": "e", "p_value": float("nan"), "verdict": "supported"},
    ]
    out = v.holm_verdicts(rows)
    assert [r["verdict_holm"] for r in out] == [
        "supported", "inconclusive", "inconclusive", "supported", "inconclusive"
    ]  # fmt: skip
    assert [r["p_holm"] for r in out[:4]] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert out[0]["family_size"] == 4 and math.isnan(out[4]["p_holm"])
    assert out[0]["ci_low"] == 0.01 and "p_holm" not in rows[0]  # intervals kept, input untouched
    # two families of two (the nan row is left out of x): x: 0.005 x 2, max(0.01 x 1, 0.01);
    # y: 0.03 x 2 = 0.06, max(0.04 x 1, 0.06) = 0.06
    for r, fam in zip(rows, "xyyxx"):
        r["family"] = fam
    out = v.holm_verdicts(rows, family="family")
    assert [r["family_size"] for r in out] == [2, 2, 2, 2, 2]
    assert [r["p_holm"] for r in out[:4]] == pytest.approx([0.01, 0.06, 0.06, 0.01])
    assert out[1]["verdict_holm"] == "inconclusive" and out[0]["verdict_holm"] == "supported"


# ---------------------------------------------------------------------------- power


def test_n_for_power_hand_value():
    # (1.95996 sqrt(0.2) + 0.84162 sqrt(0.19))^2 / 0.01 = 154.6
    n = v.n_for_power(0.1, 0.2)
    assert n == 155 and v.power_at(n, 0.1, 0.2) >= 0.8 > v.power_at(n - 1, 0.1, 0.2)
    # the old n (z_{alpha/2} term only) detects a true effect half the time
    old = 1.959963984540054**2 * 0.2 / 0.01
    assert v.power_at(old, 0.1, 0.2) == pytest.approx(0.5, abs=1e-9)
    with pytest.raises(ValueError):
        v.n_for_power(0.3, 0.2)


@pytest.mark.parametrize("effect,discordance", [(0.1, 0.3), (0.05, 0.15), (-0.1, 0.3)])
def test_power_matches_simulation(effect, discordance):
    n = v.n_for_power(effect, discordance)
    d, psi = abs(effect), discordance
    rng = np.random.default_rng(9)
    counts = rng.multinomial(n, [(psi - d) / 2, (psi + d) / 2, 1 - psi], size=2000)
    b, c = counts[:, 0], counts[:, 1]
    p = np.minimum(1.0, 2 * binom.cdf(np.minimum(b, c), b + c, 0.5))  # exact McNemar
    assert p[:5] == pytest.approx([v.mcnemar_exact(*bc) for bc in zip(b[:5], c[:5])])
    assert abs(np.mean(p < v.ALPHA) - 0.8) < 0.05


def test_n_for_power_chance_hand_value():
    # (1.95996 sqrt(0.25) + 0.84162 sqrt(0.6 * 0.4))^2 / 0.01 = 193.8 -> 194 videos
    assert v.n_for_power_chance(0.10, 0.5) == 194
    assert v.n_for_power_chance(-0.10, 0.5) == 194
    with pytest.raises(ValueError):
        v.n_for_power_chance(0.6, 0.5)


# ---------------------------------------------------------------------------- clusters, labels


@pytest.mark.parametrize(
    "video,cluster",
    [
        ("ApplyEyeMakeup/v_ApplyEyeMakeup_g03_c01.avi", "ApplyEyeMakeup/g03"),
        ("v_YoYo_g25_c04.avi", "YoYo/g25"),
        ("RedCwBlueCcw/v_RedCwBlueCcw_g3_c12", "RedCwBlueCcw/g03"),
        ("brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi",
         "brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi"),
    ],
)  # fmt: skip
def test_cluster_of_reads_class_and_group(video, cluster):
    assert v.cluster_of(video) == cluster
    assert v.clusters_of([video, video]).tolist() == [cluster, cluster]


def test_holm_reads_control_labels_and_suffixed_columns():
    rows = [
        {"p_value": 0.04, "verdict": "as expected", "p_x": 0.01, "verdict_x": "supported"},
        {"p_value": 0.03, "verdict": "not as expected", "p_x": 0.04, "verdict_x": "contradicted"},
    ]
    out = v.holm_verdicts(rows)
    assert [r["verdict_holm"] for r in out] == ["inconclusive", "inconclusive"]
    out = v.holm_verdicts([{"p_value": 0.001, "verdict": "not as expected"}])
    assert out[0]["verdict_holm"] == "not as expected"
    out = v.holm_verdicts(rows, p="p_x", verdict="verdict_x")
    assert [r["verdict_holm_x"] for r in out] == ["supported", "contradicted"]  # 0.02, 0.04
    assert out[0]["p_holm_x"] == pytest.approx(0.02) and "p_holm" not in out[0]


# ---------------------------------------------------------------------------- the study's claims


def test_pooled_claim_in_the_study_gets_p_near_one():
    """claims(): configurations pooled into one claim are strata on the same videos. The
    old code read the first configuration's McNemar (p = 2 / 2**24 here)."""
    from twostream.study import audit

    A, B = pooled_zero()
    ids = [np.repeat([f"C{g % 4}/g{g:02d}" for g in range(27)], 4)] * 3
    for kw in ({}, {"clusters": ids}):
        r = audit._verdict(A, B, "greater", shared=True, **kw)
        assert r["diff"] == pytest.approx(0, abs=1e-12) and r["p_value"] > 0.5
        assert r["verdict"] == "inconclusive" and r["n"] == 108
    assert audit._verdict(A, B, "greater", clusters=ids, shared=True)["clusters"] == 27


def test_study_rules_print_their_parameters():
    from twostream.study import audit

    assert audit.rule_of("equal").describe().startswith("equivalence (TOST, margin +-2.0 points)")
    assert "+2.0 points" in audit.rule_of("not_greater").describe()
    assert audit.rule_of("less") == v.Superiority(side="less")
    a, b = discordant(108, 0, 30, both=40)
    r = audit._verdict(a, b, "construction")
    assert r["verdict"] == audit.BY_CONSTRUCTION and math.isnan(r["p_value"])
    assert r["rule"].startswith("measurement") and r["ci_low"] < r["diff"] < r["ci_high"]
    assert v.holm_verdicts([r])[0]["verdict_holm"] == audit.BY_CONSTRUCTION


def test_no_discordance_is_not_equivalence_on_a_small_set():
    """Two models that agree on all 8 test videos: every bootstrap draw is 0, an interval
    [0, 0] that 'supported' equivalence within 2 points. 0 discordant of 8 bounds the
    difference by +-32 points, not 2; on 3,783 videos in 700 clusters by +-0.5."""
    a = np.array([[1, 0, 1, 1, 0, 0, 1, 0]], float)
    r = v.compare(a, a, rule=v.Equivalence(margin=0.02))
    assert r["verdict"] == "inconclusive" and r["ci_low"] < -0.3 and r["p_value"] > 0.5
    big = (np.random.default_rng(11).random((1, 3783)) < 0.8).astype(float)
    ids = np.arange(3783) % 700
    r = v.compare(big, big, rule=v.Equivalence(margin=0.02), clusters=ids)
    assert r["verdict"] == "supported" and r["p_value"] == pytest.approx(0.98**700)
    assert r["test"].startswith("TOST") and "no discordant cluster" in r["test"]
    assert v.compare(a, a, rule=v.Superiority())["verdict"] == "inconclusive"

"""Intervals, paired tests and verdicts on hand-computed cases; each verdict flips when the
evidence does."""

from __future__ import annotations

import math

import numpy as np
import pytest

from twostream.core import stats


def test_wilson_matches_hand_values():
    lo, hi = stats.wilson(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = stats.wilson(5, 10)
    assert (lo, hi) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))
    lo, hi = stats.wilson(32, 32)
    assert hi == 1.0 and lo == pytest.approx(0.8928, abs=1e-4)
    assert all(math.isnan(v) for v in stats.wilson(0, 0))
    a = stats.accuracy([True, False, True, True])
    assert (a["k"], a["n"], a["top1"]) == (3, 4, 0.75) and a["ci_low"] < 0.75 < a["ci_high"]


def test_mcnemar_exact_is_the_two_sided_binomial_tail():
    assert stats.mcnemar_exact(0, 5) == pytest.approx(2 * 0.5**5)
    assert stats.mcnemar_exact(3, 3) == 1.0 and stats.mcnemar_exact(0, 0) == 1.0
    # 1 vs 9 discordant: 2 * P(X <= 1), X ~ Bin(10, 1/2) = 2 * 11 / 1024
    assert stats.mcnemar_exact(1, 9) == pytest.approx(22 / 1024)


def test_paired_difference_interval_and_verdicts_flip_with_the_evidence():
    rng = np.random.default_rng(0)
    a = rng.random(200) < 0.5
    better = a | (rng.random(200) < 0.5)  # B right wherever A is, and on half the rest
    res = stats.paired(a, better)
    assert res["n"] == 200 and res["diff"] == pytest.approx(better.mean() - a.mean())
    assert 0 < res["ci_low"] < res["diff"] < res["ci_high"]
    assert res["verdict"] == "supported" and res["only_a"] == 0 and res["p_mcnemar"] < 1e-6
    assert stats.paired(better, a)["verdict"] == "contradicted"  # the same claim, reversed
    same = stats.paired(a, a)
    assert same["diff"] == 0 and same["verdict"] == "inconclusive"
    assert stats.paired(a, a, claim="equal")["verdict"] == "supported"
    assert stats.paired(a, better, claim="equal")["verdict"] == "contradicted"
    # a small test set cannot tell a small difference
    small = stats.paired(a[:16], better[:16] & (rng.random(16) < 0.9) | a[:16])
    assert small["ci_low"] <= 0 or small["verdict"] == "supported"
    # reruns give the same digits (fixed bootstrap seed)
    assert stats.paired(a, better) == res


def test_paired_needs_the_same_videos_and_averages_seeds():
    with pytest.raises(ValueError, match="same videos"):
        stats.paired(np.ones(3, bool), np.ones(4, bool))
    a = np.array([[1, 0, 1, 0], [1, 1, 1, 0]], bool)  # two seeds of A
    b = np.array([1, 1, 1, 1], bool)
    res = stats.paired(a, b)
    assert res["a_top1"] == pytest.approx(0.625) and res["diff"] == pytest.approx(0.375)


def test_verdict_rules():
    assert stats.verdict(0.01, 0.2) == "supported"
    assert stats.verdict(-0.2, -0.01) == "contradicted"
    assert stats.verdict(-0.1, 0.1) == "inconclusive"
    assert stats.verdict(-0.1, 0.1, claim="less") == "inconclusive"
    assert stats.verdict(-0.3, -0.1, claim="less") == "supported"
    assert stats.verdict(-0.004, 0.006, claim="equal", margin=0.01) == "supported"
    assert stats.verdict(float("nan"), 0.1) == "inconclusive"
    with pytest.raises(ValueError, match="unknown claim"):
        stats.verdict(0, 1, claim="bigger")
    assert stats.fmt_interval(-0.031, 0.052, signed=True) == "[-3.1, +5.2]"


def test_splits_are_strata_and_the_statistic_is_their_mean():
    s1 = np.array([1, 1, 1, 1], bool)  # 100% on split 1
    s2 = np.array([1, 0, 0, 0, 0, 0, 0, 0], bool)  # 12.5% on split 2
    one = stats.interval([s1, s2])
    assert one["top1"] == pytest.approx((1.0 + 0.125) / 2) and one["n"] == 12
    assert one["ci"] == "bootstrap" and one["ci_low"] < one["top1"] < one["ci_high"]
    assert stats.interval(s2)["ci"] == "Wilson"
    res = stats.paired([s1, s2], [s1, ~s2])
    assert res["diff"] == pytest.approx((0.875 - 0.125) / 2) and res["n"] == 12
    with pytest.raises(ValueError, match="same videos"):
        stats.paired([s1, s2], [s1, s2[:4]])

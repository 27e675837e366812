"""The thin accuracy layer (twostream.core.stats) over twostream.core.verdicts: hand values,
strata, clusters, formatting; and nothing of the old paired tests and verdicts left in it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from twostream.core import formatting, stats, verdicts


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
    assert stats.wilson is verdicts.wilson  # one implementation


def test_one_implementation_of_each_statistic():
    """The paired test, McNemar and the verdict rules live in verdicts.py alone."""
    for gone in ("paired", "verdict", "mcnemar_exact", "Z95", "_bootstrap"):
        assert not hasattr(stats, gone), gone


def test_splits_are_strata_and_the_statistic_is_their_mean():
    s1 = np.array([1, 1, 1, 1], bool)  # 100% on split 1
    s2 = np.array([1, 0, 0, 0, 0, 0, 0, 0], bool)  # 12.5% on split 2
    one = stats.interval([s1, s2])
    assert one["top1"] == pytest.approx((1.0 + 0.125) / 2) and one["n"] == 12
    assert one["ci"] == verdicts.Bootstrap.kind and one["ci_low"] < one["top1"] < one["ci_high"]
    assert stats.interval(s2)["ci"] == "Wilson"
    assert formatting.fmt_interval(-0.031, 0.052, signed=True) == "[-3.1, +5.2]"
    assert formatting.fmt_pct(float("nan")) == "n/a" and formatting.fmt_pct(0.2412) == "24.1"


def test_clusters_widen_the_accuracy_interval():
    rng = np.random.default_rng(0)
    groups = rng.random(12) < 0.6  # nine videos per group, nearly all alike
    c = np.repeat(groups, 9) ^ (rng.random(108) < 0.05)
    ids = np.repeat([f"C{g % 3}/g{g:02d}" for g in range(12)], 9)
    per_video, clustered = stats.interval(c), stats.interval(c, clusters=ids)
    assert clustered["clusters"] == 12 and per_video["clusters"] == 108
    w = lambda iv: iv["ci_high"] - iv["ci_low"]  # noqa: E731
    assert w(clustered) > 1.8 * w(per_video)
    # configurations on the same videos (shared): n and clusters counted once
    shared = stats.interval([c, c], clusters=[ids, ids], shared=True)
    assert (shared["n"], shared["clusters"]) == (108, 12)

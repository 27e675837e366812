"""Two runs' verdicts lined up (twostream.study.replication): one rule per pair, and the
"replicates" check fails when a verdict flips to its opposite and passes when it does not."""

import pandas as pd
import pytest

from twostream.study import replication as rep
from twostream.study.report import RESEED_SUFFIX, replication_section


@pytest.mark.parametrize(("a", "b", "want"), [
    ("supported", "supported", rep.AGREE),
    ("supported", "inconclusive", rep.ONE_INCONCLUSIVE),
    ("inconclusive", "contradicted", rep.ONE_INCONCLUSIVE),
    ("supported", "contradicted", rep.OPPOSITE),
    ("contradicted", "supported", rep.OPPOSITE),
    ("as expected", "not as expected", rep.OPPOSITE),
    ("as expected", "inconclusive", rep.ONE_INCONCLUSIVE),
    ("by construction", "by construction", rep.AGREE),
    ("supported", None, rep.MISSING),
])  # fmt: skip
def test_one_rule_per_pair(a, b, want):
    assert rep.classify(a, b) == want


def _run(folder, claims, checks):
    t = folder / "tables"
    t.mkdir(parents=True)
    pd.DataFrame([{"claim": c, "comparison": "x -> y", "diff": 0.05, "diff_ci_low": -0.01,
                   "diff_ci_high": 0.11, "verdict": v, "verdict_holm": v} for c, v in claims]
                 ).to_csv(t / "claims.csv", index=False)  # fmt: skip
    pd.DataFrame([{"check": c, "diff": 0.2, "diff_ci_low": 0.1, "diff_ci_high": 0.3,
                   "verdict": v, "verdict_holm": h} for c, v, h in checks]
                 ).to_csv(t / "mechanism_checks.csv", index=False)  # fmt: skip
    return folder


def test_replicates_flips_both_ways(tmp_path):
    a = _run(
        tmp_path / "smoke",
        [("deeper helps", "supported"), ("alike", "inconclusive")],
        [("M1", "supported", "supported"), ("N1", "as expected", "as expected")],
    )
    # the same verdicts, or one side inconclusive (M1 decisive raw, withdrawn by Holm): replicates
    b = _run(
        tmp_path / f"smoke{RESEED_SUFFIX}",
        [("deeper helps", "inconclusive"), ("alike", "inconclusive")],
        [("M1", "supported", "inconclusive"), ("N1", "as expected", "as expected")],
    )
    pairs = rep.compare_runs(a, b)
    assert list(pairs["agreement"]) == [rep.ONE_INCONCLUSIVE, rep.AGREE, rep.ONE_INCONCLUSIVE,
                                        rep.AGREE]  # fmt: skip
    assert rep.replicates(pairs)
    text = "\n".join(replication_section(a))
    assert "The verdicts replicate" in text and "2 agree, 2 one inconclusive, 0 opposite" in text
    # a control that fails in the second run: opposite, the check fails
    c = _run(
        tmp_path / "other",
        [("deeper helps", "supported"), ("alike", "inconclusive")],
        [("M1", "supported", "supported"), ("N1", "not as expected", "not as expected")],
    )
    assert not rep.replicates(rep.compare_runs(a, c))
    # a claim supported in one run and contradicted in the other: opposite
    d = _run(
        tmp_path / "other2",
        [("deeper helps", "contradicted"), ("alike", "inconclusive")],
        [("M1", "supported", "supported"), ("N1", "as expected", "as expected")],
    )
    assert not rep.replicates(rep.compare_runs(a, d))
    # nothing compared is no replication
    assert not rep.replicates(rep.compare_runs(tmp_path / "none", tmp_path / "none2"))


def test_a_row_present_in_one_run_only_is_listed_as_missing(tmp_path):
    a = _run(tmp_path / "a", [("deeper helps", "supported")], [("M1", "supported", "supported")])
    b = _run(
        tmp_path / "b",
        [("alike", "inconclusive")],
        [("M1", "supported", "supported"), ("M9", "supported", "supported")],
    )
    pairs = rep.compare_runs(a, b)
    assert sorted(pairs["agreement"]) == [rep.AGREE, rep.MISSING, rep.MISSING, rep.MISSING]

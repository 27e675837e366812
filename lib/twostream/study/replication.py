"""Do two runs of the same study reach the same verdicts?

A verdict that flips when only the training seeds change (or the CPU's floating-point
rounding) is not a finding about the model, it is a draw. This module lines up the
verdicts of two result folders (``results/<a>/tables``, ``results/<b>/tables``) row by row
and classifies each pair by one rule:

* ``agree``: the same verdict (after Holm, where the table has it);
* ``one inconclusive``: one run decisive, the other inconclusive -- allowed: the effect
  sits near the edge of what the test can see, and the second run says so;
* ``opposite``: supported in one, contradicted in the other (for a control, "as expected"
  against "not as expected") -- a failure of the claim that verdicts are reproducible.

The runs *replicate* when no pair is ``opposite``. Tables compared: the paper's claims,
the mechanism checks, Table 3's pairs and the audit's effects. Tables 1 and 2 compare
every cell with the cell chosen on validation, and the chosen cell may differ between
runs, so their rows are not the same comparison and are left out (their choice itself is
reported). Rows present in one run only are listed as ``missing``, never silently dropped.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from twostream.core.verdicts import plain_verdict
from twostream.study.executed import read_csv_or_none

# (table file, the columns that name a row) of every table whose verdicts are compared
COMPARED = (
    ("claims.csv", ("claim", "comparison")),
    ("mechanism_checks.csv", ("check",)),
    ("table3_pairs.csv", ("comparison",)),
    ("protocol_audit_effects.csv", ("question",)),
)
AGREE, ONE_INCONCLUSIVE, OPPOSITE, MISSING = "agree", "one inconclusive", "opposite", "missing"
DECISIVE = ("supported", "contradicted")


def final_verdict(row) -> str:
    """The verdict a reader is given: after Holm where the table has it."""
    v = row.get("verdict_holm")
    return v if isinstance(v, str) and v else str(row["verdict"])


def classify(a: str | None, b: str | None) -> str:
    """One pair of verdicts by the module's rule (None: the row is missing in that run)."""
    if a is None or b is None:
        return MISSING
    if a == b:
        return AGREE
    pa, pb = plain_verdict(a), plain_verdict(b)
    if pa in DECISIVE and pb in DECISIVE and pa != pb:
        return OPPOSITE
    return ONE_INCONCLUSIVE


def _rows(tables: Path, name: str, keys: tuple[str, ...]) -> dict[str, dict]:
    t = read_csv_or_none(tables / name)
    if t is None or t.empty:
        return {}
    return {" / ".join(str(r[k]) for k in keys if k in r): dict(r) for _, r in t.iterrows()}


def compare_runs(a: Path, b: Path) -> pd.DataFrame:
    """Every compared verdict of two result folders (each holding ``tables/``): table, row,
    verdict and 95% interval of the difference in each run, and the class of the pair."""
    out = []
    for name, keys in COMPARED:
        ra, rb = _rows(a / "tables", name, keys), _rows(b / "tables", name, keys)
        for row in list(dict.fromkeys([*ra, *rb])):
            x, y = ra.get(row), rb.get(row)
            va = final_verdict(x) if x is not None else None
            vb = final_verdict(y) if y is not None else None
            out.append({
                "table": name.removesuffix(".csv"), "row": row,
                "verdict_a": va, "diff_a": x.get("diff") if x else None,
                "diff_ci_low_a": x.get("diff_ci_low") if x else None,
                "diff_ci_high_a": x.get("diff_ci_high") if x else None,
                "verdict_b": vb, "diff_b": y.get("diff") if y else None,
                "diff_ci_low_b": y.get("diff_ci_low") if y else None,
                "diff_ci_high_b": y.get("diff_ci_high") if y else None,
                "agreement": classify(va, vb),
            })  # fmt: skip
    return pd.DataFrame(out)


def replicates(pairs: pd.DataFrame) -> bool:
    """No pair of verdicts is opposite (and at least one pair was compared)."""
    return not pairs.empty and not (pairs["agreement"] == OPPOSITE).any()


__all__ = [
    "AGREE",
    "COMPARED",
    "MISSING",
    "ONE_INCONCLUSIVE",
    "OPPOSITE",
    "classify",
    "compare_runs",
    "final_verdict",
    "replicates",
]

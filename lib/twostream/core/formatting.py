"""Numbers for reading: every table, report line and console summary a person reads writes
its accuracies (fractions in the CSV/JSON) through these, in percent with one decimal;
differences and spreads in points, signed differences with their sign; a missing value
(None, NaN, not a number) as ``n/a``. Defined once here, with no dependency beyond the
standard library, so the lightest module (``core.progress``) can use it too."""

from __future__ import annotations

import math

MISSING = "n/a"  # a value that does not exist (one seed's spread, a cell without comparison)
PERCENT_NOTE = "Accuracies in percent; the CSV holds fractions."


def number(x) -> float | None:
    """``x`` as a finite float, or None (None, NaN, inf, not a number)."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def fmt_pct(x, digits: int = 1, *, signed: bool = False) -> str:
    """A fraction in percent (``0.2412`` -> ``24.1``); ``signed``: a difference in points
    with its sign (``+6.5``); :data:`MISSING` when there is no number."""
    v = number(x)
    if v is None:
        return MISSING
    return f"{100 * v:+.{digits}f}" if signed else f"{100 * v:.{digits}f}"


def fmt_interval(lo, hi, digits: int = 1, *, signed: bool = False) -> str:
    """``[lo, hi]`` in percent (points for a difference: ``signed`` adds the sign);
    :data:`MISSING` when either end is missing."""
    if number(lo) is None or number(hi) is None:
        return MISSING
    return f"[{fmt_pct(lo, digits, signed=signed)}, {fmt_pct(hi, digits, signed=signed)}]"


def fmt_estimate(x, lo, hi, digits: int = 1, *, signed: bool = False) -> str:
    """A value with its interval, ``24.1 [17.0, 32.9]`` (``+6.5 [+0.0, +13.0]`` signed);
    :data:`MISSING` when the value is missing, the value alone when its interval is."""
    if number(x) is None:
        return MISSING
    ci = fmt_interval(lo, hi, digits, signed=signed)
    return fmt_pct(x, digits, signed=signed) + ("" if ci == MISSING else f" {ci}")


def fmt_p(p) -> str:
    """A p-value to two significant digits (not a percentage)."""
    v = number(p)
    return MISSING if v is None else f"{v:.2g}"


__all__ = ["MISSING", "PERCENT_NOTE", "fmt_estimate", "fmt_interval", "fmt_p", "fmt_pct", "number"]

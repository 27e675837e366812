"""Uncertainty of every number the study reports: intervals for accuracies, paired tests
for comparisons, and the verdict a comparison earns.

* **An accuracy** is k correct of n test videos: :func:`wilson` gives its 95% Wilson score
  interval (well-behaved at 0, 1 and small n, where the normal approximation is not).
* **A comparison** of two models is always *paired*: both scored the same test videos, so
  what matters is on how many videos they disagree. :func:`paired` reports the difference
  in accuracy (B - A), its 95% interval from a paired bootstrap over videos (the videos are
  resampled, both models' outcomes travel together; percentile interval, 10,000 resamples,
  a fixed seed so reruns give the same digits), and the exact McNemar test (two-sided
  binomial test on the discordant videos). The bootstrap is used for the interval because
  it gives an interval for the difference itself and extends to pooled and seed-averaged
  comparisons; McNemar gives the exact p-value that small test sets (32 videos) need.
* **A verdict** for a directional claim ("B beats A"): *supported* when the whole interval
  is above zero, *contradicted* when it is all below zero, otherwise *inconclusive*. For a
  claim of no difference ("A and B perform alike"): *supported* when the whole interval
  lies within ±``margin``, *contradicted* when it excludes zero, otherwise inconclusive.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

Z95 = 1.959963984540054  # two-sided 95% normal quantile
BOOTSTRAP = 10_000
SEED = 20190527  # the paper's publication date: a fixed, arbitrary seed for every bootstrap
VERDICTS = ("supported", "contradicted", "inconclusive")


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """95% Wilson score interval of a proportion k / n (fractions; (nan, nan) when n = 0)."""
    if n <= 0:
        return float("nan"), float("nan")
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def accuracy(correct: Sequence[bool] | np.ndarray) -> dict[str, Any]:
    """top1, n, k and the Wilson interval of per-video correctness."""
    c = np.asarray(correct, dtype=bool)
    k, n = int(c.sum()), int(c.size)
    lo, hi = wilson(k, n)
    return {"top1": k / n if n else float("nan"), "n": n, "k": k, "ci_low": lo, "ci_high": hi}


def correct_of(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-video correctness (N,) of score rows (N, K): the argmax is the label."""
    return np.asarray(scores).argmax(axis=1) == np.asarray(labels)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: b, c = videos only A / only B got right."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    # P(X <= k) for X ~ Binomial(n, 1/2), in log space (n can be thousands)
    logs = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2)
            for i in range(k + 1)]  # fmt: skip
    top = max(logs)
    tail = math.exp(top) * sum(math.exp(v - top) for v in logs)
    return min(1.0, 2.0 * tail)


def _bootstrap_diffs(a: np.ndarray, b: np.ndarray, *, seed: int, resamples: int) -> np.ndarray:
    """Accuracy differences mean(b) - mean(a) over resamples of the videos (paired)."""
    rng = np.random.default_rng(seed)
    n = a.shape[-1]
    d = b.astype(np.float64) - a.astype(np.float64)  # (..., n): per-video difference
    out = np.empty(resamples)
    chunk = 1000
    for start in range(0, resamples, chunk):
        m = min(chunk, resamples - start)
        idx = rng.integers(0, n, size=(m, n))  # (m, n) resampled videos
        out[start : start + m] = d[..., idx].mean(axis=-1).reshape(-1, m).mean(axis=0)
    return out


def paired(correct_a, correct_b, *, claim: str = "greater", margin: float = 0.01,
           seed: int = SEED, resamples: int = BOOTSTRAP) -> dict[str, Any]:  # fmt: skip
    """Paired comparison of B against A on the same videos.

    ``correct_a`` / ``correct_b``: per-video correctness, (n,) or (seeds, n) (several seeds
    of one model: their per-video outcomes are averaged, the bootstrap resamples videos).
    ``claim``: "greater" (B > A), "less" (B < A) or "equal" (|B - A| < ``margin``).
    Returns n, both accuracies, the difference B - A (fraction) with its 95% bootstrap
    interval, McNemar's exact p-value (first seed of each) and the verdict.
    """
    a = np.atleast_2d(np.asarray(correct_a, dtype=bool))
    b = np.atleast_2d(np.asarray(correct_b, dtype=bool))
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(
            f"a paired comparison needs the same videos: {a.shape[-1]} vs {b.shape[-1]}"
        )
    n = int(a.shape[-1])
    acc_a, acc_b = float(a.mean()), float(b.mean())
    diff = acc_b - acc_a
    if n == 0:
        lo = hi = float("nan")
    else:
        diffs = _bootstrap_diffs(a.mean(axis=0), b.mean(axis=0), seed=seed, resamples=resamples)
        lo, hi = (float(v) for v in np.percentile(diffs, [2.5, 97.5]))
    only_a = int((a[0] & ~b[0]).sum())
    only_b = int((b[0] & ~a[0]).sum())
    return {
        "n": n, "a_top1": acc_a, "b_top1": acc_b, "diff": diff, "ci_low": lo, "ci_high": hi,
        "only_a": only_a, "only_b": only_b, "p_mcnemar": mcnemar_exact(only_a, only_b),
        "claim": claim, "verdict": verdict(lo, hi, claim=claim, margin=margin),
    }  # fmt: skip


def verdict(lo: float, hi: float, *, claim: str = "greater", margin: float = 0.01) -> str:
    """supported / contradicted / inconclusive for a 95% interval [lo, hi] of B - A."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "inconclusive"
    if claim == "greater":
        return "supported" if lo > 0 else "contradicted" if hi < 0 else "inconclusive"
    if claim == "less":
        return "supported" if hi < 0 else "contradicted" if lo > 0 else "inconclusive"
    if claim == "equal":
        if -margin < lo and hi < margin:
            return "supported"
        return "contradicted" if lo > 0 or hi < 0 else "inconclusive"
    raise ValueError(f"unknown claim {claim!r}; known: greater, less, equal")


def fmt_pct(x: float, digits: int = 1) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{100 * x:.{digits}f}"


def fmt_interval(lo: float, hi: float, digits: int = 1, *, signed: bool = False) -> str:
    """``[lo, hi]`` in percent (points for a difference: ``signed`` adds the + sign)."""
    f = (lambda v: f"{100 * v:+.{digits}f}") if signed else (lambda v: f"{100 * v:.{digits}f}")
    if lo is None or not (np.isfinite(lo) and np.isfinite(hi)):
        return "[–]"
    return f"[{f(lo)}, {f(hi)}]"


__all__ = [
    "VERDICTS",
    "accuracy",
    "correct_of",
    "fmt_interval",
    "fmt_pct",
    "mcnemar_exact",
    "paired",
    "verdict",
    "wilson",
]

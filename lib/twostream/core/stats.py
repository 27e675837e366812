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
  For "B is no better than A": *supported* when the interval stays below +``margin``,
  *contradicted* when it is all above zero.
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


def _strata(x) -> list[np.ndarray]:
    """Per-video correctness as a list of (seeds, n_s) bool arrays, one per split.

    Accepts (n,), (seeds, n) or a list of those (one per split).
    """
    if isinstance(x, (list, tuple)) and x and np.ndim(x[0]) >= 1 and not np.isscalar(x[0]):
        parts = list(x)
    else:
        parts = [x]
    return [np.atleast_2d(np.asarray(p, dtype=bool)) for p in parts]


def _statistic(parts: list[np.ndarray]) -> float:
    """Mean over splits of the split's accuracy (averaged over seeds)."""
    return float(np.mean([p.mean() for p in parts]))


def _bootstrap(parts: list[np.ndarray], *, seed: int, resamples: int) -> np.ndarray:
    """The statistic over ``resamples`` resamples of the videos, within each split
    (stratified), the seeds of a video kept together. ``parts``: (seeds, n_s) arrays of
    per-video outcomes (bool correctness, or float differences of two models)."""
    rng = np.random.default_rng(seed)
    out = np.zeros(resamples)
    for p in parts:
        per_video = p.astype(np.float64).mean(axis=0)  # (n_s,)
        n = per_video.size
        if n == 0:
            continue
        for start in range(0, resamples, 1000):
            m = min(1000, resamples - start)
            idx = rng.integers(0, n, size=(m, n))  # (m, n) resampled videos
            out[start : start + m] += per_video[idx].mean(axis=1)
    return out / len(parts)


def interval(correct, *, seed: int = SEED, resamples: int = BOOTSTRAP) -> dict[str, Any]:
    """Accuracy of one model with its 95% interval: Wilson for one split and one seed,
    else a stratified bootstrap over videos of the mean over splits (seeds averaged)."""
    parts = _strata(correct)
    n = int(sum(p.shape[-1] for p in parts))
    top1 = _statistic(parts) if n else float("nan")
    if len(parts) == 1 and parts[0].shape[0] == 1:
        k = int(parts[0].sum())
        lo, hi = wilson(k, n)
        return {"top1": top1, "n": n, "ci_low": lo, "ci_high": hi, "ci": "Wilson"}
    lo, hi = (float(v) for v in np.percentile(_bootstrap(parts, seed=seed, resamples=resamples),
                                               [2.5, 97.5]))  # fmt: skip
    return {"top1": top1, "n": n, "ci_low": lo, "ci_high": hi, "ci": "bootstrap"}


def paired(correct_a, correct_b, *, claim: str = "greater", margin: float = 0.01,
           seed: int = SEED, resamples: int = BOOTSTRAP) -> dict[str, Any]:  # fmt: skip
    """Paired comparison of B against A on the same videos.

    ``correct_a`` / ``correct_b``: per-video correctness, (n,) or (seeds, n) (several seeds
    of one model: their per-video outcomes are averaged), or a list of those, one per split
    (the statistic is then the mean over splits, and the bootstrap resamples videos within
    each split). ``claim``: "greater" (B > A), "less" (B < A) or "equal" (|B - A| <
    ``margin``). Returns n, both accuracies, the difference B - A (fraction) with its 95%
    bootstrap interval, McNemar's exact p-value (first seed of each, splits pooled) and the
    verdict.
    """
    a, b = _strata(correct_a), _strata(correct_b)
    if len(a) != len(b) or any(x.shape[-1] != y.shape[-1] for x, y in zip(a, b, strict=True)):
        raise ValueError(
            f"a paired comparison needs the same videos: {[x.shape[-1] for x in a]} vs "
            f"{[y.shape[-1] for y in b]}"
        )
    n = int(sum(x.shape[-1] for x in a))
    acc_a, acc_b = _statistic(a), _statistic(b)
    if n == 0:
        lo = hi = float("nan")
    else:
        # the difference of the two models' statistics under the same resampled videos:
        # resample the per-video difference (seeds averaged), stratified by split
        d = [(y.mean(axis=0) - x.mean(axis=0))[None] for x, y in zip(a, b, strict=True)]
        diffs = _bootstrap(d, seed=seed, resamples=resamples)
        lo, hi = (float(v) for v in np.percentile(diffs, [2.5, 97.5]))
    only_a = int(sum((x[0] & ~y[0]).sum() for x, y in zip(a, b, strict=True)))
    only_b = int(sum((y[0] & ~x[0]).sum() for x, y in zip(a, b, strict=True)))
    return {
        "n": n, "a_top1": acc_a, "b_top1": acc_b, "diff": acc_b - acc_a, "ci_low": lo,
        "ci_high": hi, "only_a": only_a, "only_b": only_b,
        "p_mcnemar": mcnemar_exact(only_a, only_b), "claim": claim,
        "verdict": verdict(lo, hi, claim=claim, margin=margin),
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
    if claim == "not_greater":  # B is no better than A (by more than the margin)
        return "supported" if hi < margin else "contradicted" if lo > 0 else "inconclusive"
    raise ValueError(f"unknown claim {claim!r}; known: greater, less, equal, not_greater")


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
    "interval",
    "correct_of",
    "fmt_interval",
    "fmt_pct",
    "mcnemar_exact",
    "paired",
    "verdict",
    "wilson",
]

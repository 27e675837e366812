"""Accuracies as the study prints them: per-video correctness, top-1 with its n and 95%
interval, and the percent / points formatting of the tables.

A thin layer over :mod:`twostream.core.verdicts`, which holds the statistics themselves
(intervals, paired tests, verdict rules, multiplicity, power); nothing here computes an
interval of its own:

* :func:`accuracy` — top-1 of per-video correctness with its Wilson interval.
* :func:`interval` — the accuracy of one model over strata (splits) and seeds: Wilson for
  one split, one seed and no clusters, else the stratified cluster bootstrap (clusters
  resampled within each split, seeds drawn inside).
* :func:`correct_of` — per-video correctness of score rows. Percent and signed points for
  reading: :mod:`twostream.core.formatting`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from twostream.core import verdicts
from twostream.core.verdicts import wilson


def accuracy(correct: Sequence[bool] | np.ndarray) -> dict[str, Any]:
    """top1, n, k and the Wilson interval of per-video correctness."""
    c = np.asarray(correct, dtype=bool)
    k, n = int(c.sum()), int(c.size)
    lo, hi = wilson(k, n)
    return {"top1": k / n if n else float("nan"), "n": n, "k": k, "ci_low": lo, "ci_high": hi}


def correct_of(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-video correctness (N,) of score rows (N, K): the argmax is the label."""
    return np.asarray(scores).argmax(axis=1) == np.asarray(labels)


def interval(correct, *, clusters=None, shared: bool = False,
             resamples: int = verdicts.BOOTSTRAP) -> dict[str, Any]:  # fmt: skip
    """Accuracy of one model (mean over strata of the seed-averaged accuracy) with its 95%
    interval: Wilson for one split, one seed and no clusters; else the stratified cluster
    bootstrap of :func:`verdicts.cluster_bootstrap` (``clusters``: per split, one id per
    video; None: each video its own cluster; ``shared``: the strata are configurations on
    the same videos, resampled together). Returns top1, n, clusters, ci_low, ci_high
    and ci (the method)."""
    parts = verdicts._strata(correct)
    n = int(sum(p.shape[1] for p in parts))
    if clusters is None and len(parts) == 1 and verdicts._binary_single(parts):
        lo, hi = wilson(int(parts[0].sum()), n)
        return {"top1": float(parts[0].mean()), "n": n, "clusters": n, "ci_low": lo,
                "ci_high": hi, "ci": "Wilson"}  # fmt: skip
    boot = verdicts.cluster_bootstrap(parts, clusters=clusters, shared=shared, resamples=resamples)
    lo, hi = boot.interval()
    counts = verdicts._counts(parts, verdicts._codes(clusters, parts, shared), shared)
    n, g = counts["n"], counts["clusters"]
    return {"top1": boot.estimate, "n": n, "clusters": g, "ci_low": lo, "ci_high": hi,
            "ci": verdicts.Bootstrap.kind}  # fmt: skip


__all__ = ["accuracy", "correct_of", "interval", "wilson"]

"""Statistics core of the study: intervals, paired tests, verdict rules, multiplicity, power.

Data model. A model's outcomes are a list over strata (splits, or configurations pooled
into one claim), each an array (seeds, n_s) of 0/1 correctness (fractions in [0, 1] are
accepted); a bare (n,) or (seeds, n) array is one stratum, a list at top level is always a
list of strata. ``clusters`` (optional): per stratum, one id per video (int or str, e.g.
"class/group"). Videos of one group share actor, scene and background, so the cluster, not
the video, is the unit resampled and sign-flipped. The statistic is the mean over strata
of the stratum accuracy (seeds averaged), strata weighted equally as the paper averages
its splits. Strata are taken to hold different videos; ``shared=True`` says they score the
same videos (configurations on one split), and then a cluster moves in all strata at once.

Fixes against stats.py: pooled claims are tested on every stratum (paired_test); a control
fails when its interval excludes chance on either side (AtChance); equivalence is TOST,
contradicted only wholly outside a printed margin; power has its z_{1-beta} term; Holm
corrects for multiplicity; clusters, not videos, are resampled, and seeds are drawn inside
every resample. Every rule's p-value is on one scale: decisive about when p <= ALPHA.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from scipy.stats import norm
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.proportion import proportion_confint

LEVEL = 0.95  # two-sided level of every reported interval
ALPHA = 0.05
BOOTSTRAP = 10_000  # bootstrap resamples, and random sign flips of the permutation test
SEED = 20190527  # the paper's publication date: fixed, arbitrary; reruns give the same digits
EXACT_MAX = 16  # sign-flip units up to which all 2**U flips are enumerated (65,536 rows)
VERDICTS = ("supported", "contradicted", "inconclusive")
_CHUNK = 4_000_000  # elements of one (resamples, units) block: bounds memory near 32 MB

# ---------------------------------------------------------------------------- inputs


def _strata(x) -> list[np.ndarray]:
    """Outcomes as a list of (seeds, n_s) float arrays, one per stratum."""
    many = isinstance(x, (list, tuple)) and len(x) > 0 and np.ndim(x[0]) >= 1
    out = []
    for p in list(x) if many else [x]:
        p = np.asarray(p, dtype=np.float64)
        p = p[None] if p.ndim == 1 else p
        if p.ndim != 2 or p.size == 0:
            raise ValueError(f"a stratum must be a non-empty (n,) or (seeds, n) array: {p.shape}")
        if not np.all((p >= 0) & (p <= 1)):
            raise ValueError("outcomes must be 0/1 correctness or fractions in [0, 1]")
        out.append(p)
    return out


def _pair(a, b) -> tuple[list[np.ndarray], list[np.ndarray]]:
    A, B = _strata(a), _strata(b)
    na, nb = [x.shape[1] for x in A], [y.shape[1] for y in B]
    if na != nb:
        raise ValueError(f"a paired comparison needs the same videos per stratum: {na} vs {nb}")
    return A, B


def _codes(clusters, parts: list[np.ndarray], shared: bool = False) -> list[np.ndarray]:
    """Cluster ids as codes 0..G-1 per stratum; no clusters: every video its own cluster."""
    if clusters is None:
        codes = [np.arange(p.shape[1]) for p in parts]
    else:
        nested = isinstance(clusters, (list, tuple)) and np.ndim(clusters[0]) >= 1
        per = list(clusters) if nested or len(parts) > 1 else [clusters]
        if len(per) != len(parts) or any(len(c) != p.shape[1] for c, p in zip(per, parts)):
            raise ValueError("clusters need one id per video in every stratum")
        codes = [np.unique(np.asarray(c), return_inverse=True)[1].ravel() for c in per]
    if shared and any(not np.array_equal(codes[0], c) for c in codes[1:]):
        raise ValueError("shared=True needs the same videos and clusters in every stratum")
    return codes


_UCF_NAME = re.compile(r"v_(?P<cls>.+)_g(?P<group>\d+)_c\d+$")


def cluster_of(video: str) -> str:
    """The cluster of a test video: its (class, group) from UCF101's naming
    ``[Class/]v_<Class>_g<GG>_c<CC>[.avi]`` ("Class/v_Class_g03_c01.avi" -> "Class/g03"),
    which the embedded synthetic set follows too (clips of one class and group share their
    background; in UCF101 the actor and scene). A name without it is its own cluster."""
    stem = str(video).replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
    m = _UCF_NAME.match(stem)
    return f"{m['cls']}/g{int(m['group']):02d}" if m else str(video)


def clusters_of(videos) -> np.ndarray:
    """:func:`cluster_of` of every video name, as a (n,) str array."""
    return np.asarray([cluster_of(v) for v in videos], dtype=str)


def _binary_single(parts: list[np.ndarray]) -> bool:
    return all(p.shape[0] == 1 and np.all((p == 0) | (p == 1)) for p in parts)


# ---------------------------------------------------------------------------- evidence


@dataclass(frozen=True, eq=False)
class Bootstrap:
    """A point estimate and its bootstrap draws. p_above(x): p-value against theta <= x;
    p_below(x): against theta >= x. Both are dual to the percentile interval (its lower end
    lies above x about when p_above(x) < (1 - level) / 2), up to the resampling resolution."""

    estimate: float
    draws: np.ndarray
    kind: ClassVar[str] = "stratified cluster bootstrap"

    def interval(self, level: float = LEVEL) -> tuple[float, float]:
        lo, hi = np.percentile(self.draws, [50 * (1 - level), 50 * (1 + level)])
        return float(lo), float(hi)

    def p_above(self, x: float) -> float:  # (1 + count) / (1 + R): never 0
        return (1 + int(np.count_nonzero(self.draws <= x))) / (1 + self.draws.size)

    def p_below(self, x: float) -> float:
        return (1 + int(np.count_nonzero(self.draws >= x))) / (1 + self.draws.size)


@dataclass(frozen=True)
class Score:
    """One accuracy k / n (one stratum, one seed, no clusters): the Wilson interval, and the
    score test it inverts for p-values, so that the two never disagree."""

    k: int
    n: int
    kind: ClassVar[str] = "score test (the Wilson interval's dual)"

    @property
    def estimate(self) -> float:
        return self.k / self.n

    def interval(self, level: float = LEVEL) -> tuple[float, float]:
        return wilson(self.k, self.n, level=level)

    def _tail(self, x: float, side: int) -> float:
        p = self.k / self.n
        if x <= 0 or x >= 1:  # a null on the boundary has no variance: the data exclude it or not
            return 0.0 if side * (p - x) > 0 else 1.0
        return float(norm.sf(side * (p - x) / math.sqrt(x * (1 - x) / self.n)))

    def p_above(self, x: float) -> float:
        return self._tail(x, +1)

    def p_below(self, x: float) -> float:
        return self._tail(x, -1)


@dataclass(frozen=True)
class NoDiscordance:
    """A paired difference on ``clusters`` clusters none of which the two models score
    differently: every bootstrap draw is 0, an interval of no width that no sample size
    earns. The evidence is the count instead: no discordant cluster out of G. A true
    difference of size x needs at least a share |x| of the clusters discordant, so the
    chance of seeing none is at most (1 - |x|)^G: p_above(x) for x < 0, p_below(x) for
    x > 0; the interval is +- the Wilson upper bound of 0 / G (8 videos: +-32 points at 95%;
    3,783 videos in 700 clusters: +-0.5 points)."""

    clusters: int
    estimate: float = 0.0
    kind: ClassVar[str] = "no discordant cluster: exact bound (1 - |x|)^clusters"

    def interval(self, level: float = LEVEL) -> tuple[float, float]:
        u = wilson(0, self.clusters, level=level)[1]
        return -u, u

    def p_above(self, x: float) -> float:
        return (1 - min(1.0, -x)) ** self.clusters if x < 0 else 1.0

    def p_below(self, x: float) -> float:
        return (1 - min(1.0, x)) ** self.clusters if x > 0 else 1.0


# ---------------------------------------------------------------------------- tests


def wilson(k: int, n: int, *, level: float = LEVEL) -> tuple[float, float]:
    """Wilson score interval of k / n (statsmodels proportion_confint, method="wilson"):
    well-behaved at 0, 1 and small n, unlike the normal approximation. nan when n = 0."""
    if n <= 0:
        return float("nan"), float("nan")
    lo, hi = proportion_confint(k, n, alpha=1 - level, method="wilson")
    return max(0.0, float(lo)), min(1.0, float(hi))


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value (statsmodels mcnemar, exact=True: binomial test of b
    out of b + c at 1/2); b, c = videos only A / only B got right."""
    return float(mcnemar([[0, b], [c, 0]], exact=True).pvalue)


def signflip(
    a, b, *, clusters=None, shared=False, resamples=BOOTSTRAP, seed=SEED
) -> tuple[float, str]:
    """Stratified sign-flip (paired permutation) test of no difference: (p, test name).

    Unit: the cluster (video if no clusters), its share of the pooled statistic (mean over
    strata of B - A, seeds averaged) being its videos' summed differences / (strata x n_s).
    Under H0 (A, B exchangeable on each unit) both signs are equally likely; units stay in
    their stratum. Two-sided; all 2**U flips when U <= EXACT_MAX units differ, else
    ``resamples`` flips from a fixed seed, p = (1 + hits) / (1 + resamples).
    """
    A, B = _pair(a, b)
    codes = _codes(clusters, A, shared)
    k = len(A)
    t = [
        np.bincount(c, weights=y.mean(0) - x.mean(0)) / (k * c.size) for x, y, c in zip(A, B, codes)
    ]
    t = np.sum(t, axis=0) if shared else np.concatenate(t)
    t = t[np.abs(t) > 1e-15]  # a unit without a difference flips to itself
    name = f"stratified sign-flip permutation (per {'video' if clusters is None else 'cluster'}"
    if t.size == 0:
        return 1.0, name + ", no differences)"
    obs = abs(t.sum()) - 1e-9 * np.abs(t).sum()  # tolerance: the same sums in another order
    if t.size <= EXACT_MAX:
        signs = 1 - 2 * ((np.arange(2**t.size)[:, None] >> np.arange(t.size)) & 1)
        return float(np.mean(np.abs(signs @ t) >= obs)), name + ", exact)"
    rng, hits, step = np.random.default_rng(seed), 0, max(1, _CHUNK // t.size)
    for start in range(0, resamples, step):
        signs = 2 * rng.integers(0, 2, size=(min(step, resamples - start), t.size)) - 1
        hits += int(np.count_nonzero(np.abs(signs @ t) >= obs))
    return (1 + hits) / (1 + resamples), name + f", {resamples:,} random flips)"


def paired_test(
    a, b, *, clusters=None, shared=False, resamples=BOOTSTRAP, seed=SEED
) -> tuple[float, str]:
    """The test of no difference that ``compare`` reports: (p, test name).

    One seed per model, 0/1 outcomes, no clusters, strata on different videos: exact
    McNemar on the discordant pairs summed over all strata, the exact Mantel-Haenszel test
    for matched pairs (each pair is its own stratum: splitting by split changes nothing).
    It weights strata by discordant pairs, not equally; with equal n_s it is the sign-flip
    test exactly. Otherwise (seeds, fractions, clusters, shared): the sign-flip test.
    """
    A, B = _pair(a, b)
    if clusters is None and not shared and _binary_single(A) and _binary_single(B):
        only_a = int(sum(((x[0] == 1) & (y[0] == 0)).sum() for x, y in zip(A, B)))
        only_b = int(sum(((x[0] == 0) & (y[0] == 1)).sum() for x, y in zip(A, B)))
        return mcnemar_exact(only_a, only_b), "exact McNemar (discordant pairs summed over strata)"
    return signflip(A, B, clusters=clusters, shared=shared, resamples=resamples, seed=seed)


def _seed_weights(rng: np.random.Generator, m: int, s: int, seeds: str) -> np.ndarray:
    """(m, s): the weight of each of a model's s seeds in m resamples."""
    if s == 1:
        return np.ones((m, 1))
    if seeds == "one":
        return np.eye(s)[rng.integers(0, s, m)]
    return (rng.integers(0, s, size=(m, s))[:, :, None] == np.arange(s)).mean(axis=1)


def cluster_bootstrap(
    a, b=None, *, clusters=None, shared=False, seeds="resample", resamples=BOOTSTRAP, seed=SEED
) -> Bootstrap:
    """Bootstrap of the mean-over-strata accuracy of ``a`` (with ``b``: of the paired
    difference B - A), resampling clusters with replacement within each stratum.

    A stratum's resampled accuracy is correct / all videos in the drawn clusters (sizes
    differ); both models of a pair see the same clusters. ``seeds="resample"`` draws each
    model's seeds with replacement in every stratum and resample and averages them, as the
    reported statistic averages them; ``seeds="one"`` draws one seed: the interval of a
    single run (wider). A one-seed model brings no seed variance. Percentile intervals.
    """
    if seeds not in ("resample", "one"):
        raise ValueError(f"seeds must be 'resample' or 'one', got {seeds!r}")
    A, B = _pair(a, b) if b is not None else (_strata(a), None)
    codes = _codes(clusters, A, shared)
    models = [(A, 1.0)] if B is None else [(A, -1.0), (B, 1.0)]
    # per stratum: cluster sizes (G,), and per model its per-seed cluster sums (seeds, G)
    sizes = [np.bincount(c).astype(np.float64) for c in codes]
    sums = [
        [np.stack([np.bincount(c, weights=r) for r in x[s]]) for x, _ in models]
        for s, c in enumerate(codes)
    ]
    rng, draws = np.random.default_rng(seed), np.zeros(resamples)
    step = max(1, _CHUNK // max(z.size for z in sizes))
    for start in range(0, resamples, step):
        m, counts = min(step, resamples - start), None
        for s, size in enumerate(sizes):
            g = size.size
            if counts is None or not shared:  # shared: the same clusters in every stratum
                # times each cluster is drawn, (m, G): every statistic is linear in it
                idx = rng.integers(0, g, size=(m, g)) + g * np.arange(m)[:, None]
                counts = np.bincount(idx.ravel(), minlength=m * g).reshape(m, g).astype(np.float64)
            num = 0.0
            for cs, (_, sign) in zip(sums[s], models):
                num = num + sign * ((counts @ cs.T) * _seed_weights(rng, m, len(cs), seeds)).sum(1)
            draws[start : start + m] += num / (counts @ size)
    estimate = sum(sign * np.mean([x.mean() for x in parts]) for parts, sign in models)
    return Bootstrap(float(estimate), draws / len(A))


# ---------------------------------------------------------------------------- verdict rules
# A rule decides on an interval of the quantity at its own level (verdict) and names the
# p-value of the test behind that verdict (p), computed from the same evidence.


def _decide(lo: float, hi: float, support: bool, against: bool) -> str:
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "inconclusive"
    return "supported" if support else "contradicted" if against else "inconclusive"


def _pick(verdict: str, support: float, against: float) -> float:
    """The p-value of the verdict reached; inconclusive: the nearer of the two."""
    return {"supported": support, "contradicted": against}.get(verdict, min(support, against))


@dataclass(frozen=True)
class _Rule:
    def __post_init__(self):
        # margins and chance are fractions: 2 meant as "2 points" must not pass silently
        margin, chance = getattr(self, "margin", 0.5), getattr(self, "chance", 0.0)
        ok = 0 < self.level < 1 and 0 < margin < 1 and -1 <= chance <= 1
        if not ok or getattr(self, "side", "greater") not in ("greater", "less"):
            raise ValueError(f"need level, margin in (0, 1), chance in [-1, 1], a side: {self}")

    @property
    def points(self) -> str:
        return f"{100 * self.margin:.1f} points"


@dataclass(frozen=True)
class Superiority(_Rule):
    """Claim: B is better than A (side "greater") or worse (side "less"). p: two-sided."""

    side: str = "greater"
    level: float = LEVEL
    name: ClassVar[str] = "superiority"
    test: ClassVar[str] = "two-sided test of no difference"

    def describe(self) -> str:
        sign, yes, no = (
            (">", "above", "below") if self.side == "greater" else ("<", "below", "above")
        )
        return (
            f"superiority (B {sign} A): supported when the {self.level:.0%} interval of B-A "
            f"lies wholly {yes} 0, contradicted when it lies wholly {no} 0, else inconclusive"
        )

    def verdict(self, lo: float, hi: float) -> str:
        up = self.side == "greater"
        return _decide(lo, hi, lo > 0 if up else hi < 0, hi < 0 if up else lo > 0)

    def p(self, ev, verdict: str) -> float:
        return min(1.0, 2 * min(ev.p_above(0.0), ev.p_below(0.0)))


@dataclass(frozen=True)
class Equivalence(_Rule):
    """Claim: A and B perform alike, within +-margin (a fraction): two one-sided tests at 5%,
    i.e. the 90% interval, which also decides a contradiction."""

    margin: float
    level: float = 0.90
    name: ClassVar[str] = "equivalence"
    test: ClassVar[str] = "TOST (two one-sided tests against +-margin)"

    def describe(self) -> str:
        m = self.points
        return (
            f"equivalence (TOST, margin +-{m}): supported when the {self.level:.0%} interval "
            f"of B-A lies inside +-{m}, contradicted when it lies wholly outside +-{m}, "
            "else inconclusive"
        )

    def verdict(self, lo: float, hi: float) -> str:
        m = self.margin
        return _decide(lo, hi, -m < lo and hi < m, lo > m or hi < -m)

    def p(self, ev, verdict: str) -> float:
        m = self.margin
        support = max(ev.p_above(-m), ev.p_below(m))  # TOST: both one-sided tests must reject
        return _pick(verdict, support, min(ev.p_above(m), ev.p_below(-m)))


@dataclass(frozen=True)
class NotGreater(_Rule):
    """Claim: B is no better than A by more than +margin: non-inferiority with A and B
    swapped, one half of TOST. The one-sided 95% upper bound of B-A (upper end of the 90%
    interval) below +margin supports it; the one-sided 95% lower bound above +margin
    contradicts it. B better by less than the margin is allowed by the claim."""

    margin: float
    level: float = 0.90
    name: ClassVar[str] = "not_greater"
    test: ClassVar[str] = "one-sided test against +margin"

    def describe(self) -> str:
        m = "+" + self.points
        return (
            f"not greater (B no better than A by more than {m}; one-sided, as non-inferiority): "
            f"supported when the upper end of the {self.level:.0%} interval of B-A lies below "
            f"{m}, contradicted when its lower end lies above {m}, else inconclusive"
        )

    def verdict(self, lo: float, hi: float) -> str:
        return _decide(lo, hi, hi < self.margin, lo > self.margin)

    def p(self, ev, verdict: str) -> float:
        return _pick(verdict, ev.p_below(self.margin), ev.p_above(self.margin))


@dataclass(frozen=True)
class AtChance(_Rule):
    """Negative control: the quantity it names (an accuracy; or a difference, chance=0) sits
    at ``chance``. Fails on either side: a model reliably below chance has learnt the labels
    as surely as one above it, so an all-wrong model fails. Passing also needs an interval
    narrow enough to rule out a deviation of ``margin``. Verdicts: supported = passes."""

    chance: float
    margin: float
    level: float = LEVEL
    name: ClassVar[str] = "at_chance"
    test: ClassVar[str] = "two-sided test against chance, or equivalence within +-margin"
    labels: ClassVar[dict] = dict(zip(VERDICTS, ("as expected", "not as expected", "inconclusive")))

    def describe(self) -> str:
        m = self.points
        return (
            f"control at chance {100 * self.chance:.1f}% (two-sided, margin +-{m}): passes "
            f"('as expected') when the {self.level:.0%} interval of (value - chance) contains 0 "
            f"and lies inside +-{m}, fails ('not as expected') when the interval excludes "
            "chance on either side, inconclusive otherwise"
        )

    def verdict(self, lo: float, hi: float) -> str:
        """``lo``, ``hi``: interval of the quantity itself; chance is subtracted here."""
        lo, hi, m = lo - self.chance, hi - self.chance, self.margin
        # a reliable deviation fails however small: the pass needs 0 inside the interval
        return _decide(lo, hi, lo <= 0 <= hi and -m < lo and hi < m, lo > 0 or hi < 0)

    def p(self, ev, verdict: str) -> float:
        c, m = self.chance, self.margin
        against = min(1.0, 2 * min(ev.p_above(c), ev.p_below(c)))
        return _pick(verdict, min(1.0, 2 * max(ev.p_above(c - m), ev.p_below(c + m))), against)


RULES = {r.name: r for r in (Superiority, Equivalence, NotGreater, AtChance)}

# ---------------------------------------------------------------------------- entry points


def _counts(parts: list[np.ndarray], codes: list[np.ndarray], shared: bool = False) -> dict:
    s = tuple(p.shape[0] for p in parts)
    g = [int(c.max() + 1) for c in codes]
    return {  # shared strata score the same videos: n and clusters count them once
        "n": parts[0].shape[1] if shared else int(sum(p.shape[1] for p in parts)),
        "clusters": g[0] if shared else sum(g),
        "strata": len(parts),
        "seeds": s[0] if len(set(s)) == 1 else s,
    }


def compare(
    a, b, *, rule, clusters=None, shared=False, seeds="resample", resamples=BOOTSTRAP, seed=SEED
) -> dict[str, Any]:
    """Paired comparison of B against A on the same videos, judged by ``rule``.

    Returns (fractions): n, clusters (count), strata, seeds_a, seeds_b (per stratum; a
    tuple when strata differ), a_top1, b_top1, diff (B - A, mean over strata), ci_low /
    ci_high (95% cluster bootstrap, seeds drawn), ci90_low / ci90_high when the rule decides
    on a 90% interval, p_value and test (the test behind the verdict: for Superiority the
    test of no difference, paired_test; for the margin rules the one-sided tests dual to the
    rule's interval; where no cluster is discordant the bootstrap has no width, and the
    interval and p come from the count of discordant clusters, NoDiscordance), p_zero / test_zero (the test of no difference, always), rule
    (describe()) and verdict. All uncorrected: holm_verdicts adds the correction.
    """
    A, B = _pair(a, b)
    out = _counts(A, _codes(clusters, A, shared), shared)
    out["seeds_a"], out["seeds_b"] = out.pop("seeds"), _counts(B, _codes(None, B))["seeds"]
    kw = dict(clusters=clusters, shared=shared, resamples=resamples, seed=seed)
    boot = cluster_bootstrap(A, B, seeds=seeds, **kw)
    if not np.any(np.abs(boot.draws - boot.draws[0]) > 1e-12):  # no discordant cluster
        boot = NoDiscordance(out["clusters"], boot.estimate)
    p_zero, test_zero = paired_test(A, B, **kw)
    verdict = rule.verdict(*boot.interval(rule.level))
    if isinstance(rule, Superiority):
        p, test = p_zero, test_zero
    else:
        p, test = rule.p(boot, verdict), f"{rule.test}, {boot.kind}"
    out.update(
        a_top1=float(np.mean([x.mean() for x in A])), b_top1=float(np.mean([y.mean() for y in B]))
    )
    out["diff"] = boot.estimate
    out["ci_low"], out["ci_high"] = boot.interval(LEVEL)
    if rule.level != LEVEL:
        k = round(100 * rule.level)
        out[f"ci{k}_low"], out[f"ci{k}_high"] = boot.interval(rule.level)
    out.update(p_value=p, test=test, p_zero=p_zero, test_zero=test_zero)
    out.update(rule=rule.describe(), verdict=verdict)
    return out


def at_chance(
    a, *, chance, margin, clusters=None, seeds="resample", resamples=BOOTSTRAP, seed=SEED
) -> dict[str, Any]:
    """A negative control: is the accuracy of ``a`` at ``chance`` (rule AtChance)?

    One stratum, one seed, 0/1 outcomes, no clusters: Wilson interval and its score test;
    otherwise the cluster bootstrap (seeds drawn). Returns (fractions): n, clusters, strata,
    seeds, top1, ci_low, ci_high, chance, margin, p_value, test, rule, verdict and outcome
    ("as expected" / "not as expected" / "inconclusive").
    """
    rule = AtChance(chance=chance, margin=margin)
    A = _strata(a)
    out = _counts(A, _codes(clusters, A))
    if len(A) == 1 and clusters is None and _binary_single(A):
        ev = Score(int(A[0].sum()), A[0].shape[1])
    else:
        ev = cluster_bootstrap(A, clusters=clusters, seeds=seeds, resamples=resamples, seed=seed)
    lo, hi = ev.interval(rule.level)
    verdict = rule.verdict(lo, hi)
    out.update(top1=float(ev.estimate), ci_low=lo, ci_high=hi, chance=chance, margin=margin)
    out.update(p_value=rule.p(ev, verdict), test=f"{rule.test}, {ev.kind}", rule=rule.describe())
    out.update(verdict=verdict, outcome=AtChance.labels[verdict])
    return out


# ---------------------------------------------------------------------------- multiplicity


def holm(pvalues, *, alpha: float = ALPHA) -> tuple[np.ndarray, np.ndarray]:
    """Holm step-down adjusted p-values and reject flags: the i-th smallest of m p-values
    times (m - i + 1), made non-decreasing, capped at 1; family-wise error rate at
    ``alpha`` under any dependence. (statsmodels multipletests(method="holm") gives the
    same numbers, tests/test_verdicts.py; it also runs a full garbage collection per call.)"""
    p = np.asarray(pvalues, dtype=np.float64)
    if p.size == 0:
        return p, np.zeros(0, dtype=bool)
    order = np.argsort(p, kind="stable")
    steps = np.maximum.accumulate(p[order] * (p.size - np.arange(p.size)))
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(1.0, steps)
    return adjusted, adjusted <= alpha


_PLAIN = {**{x: x for x in VERDICTS}, **{lab: x for x, lab in AtChance.labels.items()}}


def plain_verdict(verdict: str) -> str | None:
    """A verdict or a control's label ("as expected" / "not as expected") as one of
    :data:`VERDICTS` (None for anything else: "by construction", "chosen")."""
    return _PLAIN.get(verdict)


def holm_verdicts(
    rows, *, family=None, alpha: float = ALPHA, p: str = "p_value", verdict: str = "verdict"
) -> list[dict]:
    """Copies of ``rows`` (dicts with ``p`` and ``verdict``, e.g. from compare) with p_holm,
    family_size and verdict_holm: a supported / contradicted verdict whose Holm-adjusted p
    exceeds ``alpha`` becomes inconclusive; other verdicts stay. Holm runs within each
    family: rows sharing the value of key ``family`` (None: all rows are one family). Rows
    without a finite p are left out of the family and cannot stay decisive; a control's
    outcome gets outcome_holm, and a control's label as its verdict ("as expected", "not as
    expected") is read as supported / contradicted and kept as a label. The intervals in the
    rows stay uncorrected (95%), beside the corrected verdict: the correction widens
    nothing, it withdraws what the family cannot afford. ``p`` and ``verdict`` name the
    columns read; a suffix after "verdict" (e.g. "verdict_chosen") names the columns
    written (p_holm_chosen, verdict_holm_chosen, family_size_chosen).
    """
    sfx = verdict[len("verdict") :] if verdict.startswith("verdict") else f"_{verdict}"
    out = [dict(r) for r in rows]
    groups: dict[Any, list[dict]] = {}
    for r in out:
        groups.setdefault(r.get(family) if family else None, []).append(r)
    for members in groups.values():
        ok = [r for r in members if np.isfinite(r[p])]
        adjusted = dict(zip(map(id, ok), holm([r[p] for r in ok], alpha=alpha)[0].tolist()))
        for r in members:
            r[f"p_holm{sfx}"] = adjusted.get(id(r), float("nan"))
            r[f"family_size{sfx}"] = len(ok)
            decisive = _PLAIN.get(r[verdict]) in ("supported", "contradicted")
            keep = not decisive or r[f"p_holm{sfx}"] <= alpha  # nan <= alpha is False
            r[f"verdict_holm{sfx}"] = r[verdict] if keep else "inconclusive"
            if "outcome" in r and not sfx:  # a control from at_chance: its label follows
                r["outcome_holm"] = AtChance.labels[_PLAIN[r["verdict_holm"]]]
    return out


# ---------------------------------------------------------------------------- power


def _power_args(effect: float, discordance: float) -> tuple[float, float]:
    d, psi = abs(float(effect)), float(discordance)
    if not 0 < d <= psi <= 1:
        raise ValueError(f"need 0 < |effect| <= discordance <= 1, got {effect}, {discordance}")
    return d, psi


def power_at(n: int, effect: float, discordance: float, *, alpha: float = ALPHA) -> float:
    """Power of the two-sided paired (McNemar-type) test on n videos at a true difference
    ``effect`` (B - A), ``discordance`` being the share of videos the models disagree on.
    Normal approximation (Connor 1987): the mean paired difference has variance psi / n
    under H0, (psi - d^2) / n under the alternative. The exact McNemar test is a little
    conservative: its power at small n is a few points lower."""
    d, psi = _power_args(effect, discordance)
    za = norm.ppf(1 - alpha / 2)
    return float(norm.cdf((d * math.sqrt(n) - za * math.sqrt(psi)) / math.sqrt(psi - d * d)))


def n_for_power(effect: float, discordance: float, *, power=0.8, alpha=ALPHA) -> int:
    """Paired videos needed to detect ``effect`` with probability ``power`` (Connor 1987):
    n = (z_{1-alpha/2} sqrt(psi) + z_{power} sqrt(psi - d^2))^2 / d^2. Without the z_{power}
    term (the old code) it is the n at which a true effect is detected half the time."""
    d, psi = _power_args(effect, discordance)
    za, zb = norm.ppf(1 - alpha / 2), norm.ppf(power)
    return math.ceil((za * math.sqrt(psi) + zb * math.sqrt(psi - d * d)) ** 2 / (d * d))


def n_for_power_chance(effect: float, chance: float, *, power=0.8, alpha=ALPHA) -> int:
    """Videos a control needs to detect an accuracy ``chance + effect`` (effect: a fraction,
    either sign) against ``chance`` with probability ``power``, by the two-sided score test
    (the Wilson interval's dual, as at_chance): n = (z_{1-alpha/2} sqrt(p0 q0) + z_{power}
    sqrt(p1 q1))^2 / d^2. Videos, not clusters: clustered videos need more."""
    p0, p1 = float(chance), float(chance) + float(effect)
    if not (0 < p0 < 1 and 0 <= p1 <= 1 and effect != 0):
        raise ValueError(f"need chance in (0, 1), chance + effect in [0, 1], effect != 0: "
                         f"{chance}, {effect}")  # fmt: skip
    za, zb = norm.ppf(1 - alpha / 2), norm.ppf(power)
    num = za * math.sqrt(p0 * (1 - p0)) + zb * math.sqrt(p1 * (1 - p1))
    return math.ceil(num**2 / (p1 - p0) ** 2)

"""Every statistic the harness shows, in one place, computed with ``scipy.stats``.

A NAS result is an accuracy measured on a finite split after one or a few training runs, so every number
comes with an interval and every comparison with a rule that says when it is decided:

- **One accuracy on a split of n images**: the Wilson score interval (:func:`wilson_interval`,
  ``scipy.stats.binomtest(k, n).proportion_ci(method="wilson")``).  It covers the sampling noise of the split
  only; the seed-to-seed noise of training is not in it (``nas-harness confirm`` measures that).
- **Two single-run accuracies** (e.g. a search arch vs a reference on the same validation split):
  Newcombe's hybrid score interval of the difference (:func:`accuracy_difference`; R. G. Newcombe,
  "Interval estimation for the difference between independent proportions: comparison of eleven methods",
  Statistics in Medicine 17, 1998, method 10), built from the two Wilson intervals.  It treats the two
  accuracies as independent; on the *same* images two classifiers' errors are positively correlated, which
  makes the true interval narrower, so this rule is conservative: it says "tied" rather than "beats" when
  in doubt.
- **Several seeds of one arch**: mean with a Student-t interval (:func:`summarize`, ``scipy.stats.t``).
- **Paired seeds of two archs** (same seed = same data order): the paired t analysis of the per-seed
  differences (:func:`paired_delta`, ``scipy.stats.ttest_rel``).
- **Rank agreement** of two scorings of the same archs: Kendall's tau-b and Spearman's rho
  (``scipy.stats.kendalltau`` / ``spearmanr``) with percentile-bootstrap intervals over archs
  (``scipy.stats.bootstrap``, paired resampling), top-k recall and regret (:func:`top_k_recall`,
  :func:`regret`).

**The wording rule** (:func:`verdict`), used by every report: with a 95 % interval ``[low, high]`` of
"A − B", A **beats** B when ``low > 0``, is **worse** when ``high < 0``, and is **tied within noise**
otherwise.  Nothing is called better on a point estimate alone.  A paired difference that is the same on every
seed has a zero-width interval that measures no noise; reports word it with :func:`paired_words` /
:func:`difference_words` ("identical on all N seeds (difference 0)", or the verdict "on all N seeds by the same
margin (zero-width interval ...)"), never as a bare "tied within noise" / "beats".

**Bounded quantities** (an accuracy in [0, 1], a regret >= 0, a normalised hypervolume in [0, 1]): a Student-t
interval of their mean over a few seeds can leave the range; it is clipped to it (``summarize(bounds=...)``,
:func:`mean_interval`) and the reports say so.  With fewer than two values there is no interval (NaN; printed
"n/a (1 seed)").
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "BEATS",
    "CONFIDENCE",
    "TIED",
    "UNDECIDED_ONE_PAIR",
    "WORSE",
    "AccuracyDifference",
    "PairedDelta",
    "RankCorrelation",
    "Summary",
    "accuracy_difference",
    "accuracy_interval",
    "accuracy_intervals",
    "difference_words",
    "interval_text",
    "kendall_tau",
    "mean_interval",
    "paired_delta",
    "paired_words",
    "rank_agreement",
    "regret",
    "spearman_rho",
    "summarize",
    "top_k_recall",
    "verdict",
    "wilson_interval",
]

#: Confidence level of every interval the harness shows.
CONFIDENCE = 0.95
#: The range of an accuracy, for clipping intervals of means.
ACCURACY = (0.0, 1.0)
BEATS = "beats"
TIED = "tied within noise"
WORSE = "worse"
#: How reports word a comparison with fewer than two paired seeds (no interval).
UNDECIDED_ONE_PAIR = "undecided (one pair)"


def verdict(low: float, high: float) -> str:
    """The wording of a difference A − B with interval ``[low, high]``: :data:`BEATS` when ``low > 0``,
    :data:`WORSE` when ``high < 0``, :data:`TIED` otherwise (also when the interval is unknown)."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return TIED
    if low > 0:
        return BEATS
    if high < 0:
        return WORSE
    return TIED


# --------------------------------------------------------------------------- one proportion


def wilson_interval(successes: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval of a proportion ``successes / n`` (``scipy.stats.binomtest``)."""
    from scipy.stats import binomtest

    n = int(n)
    k = int(successes)
    if n < 1 or not 0 <= k <= n:
        raise ValueError(f"wilson_interval: need 0 <= successes <= n and n >= 1, got {k} of {n}")
    ci = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def _count(acc: Any, n: Any) -> tuple[int, int] | None:
    """(correct, n) of an accuracy over n images, or None when either is unknown."""
    try:
        a, m = float(acc), float(n)
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(a) and math.isfinite(m)) or m < 1 or not -1e-9 <= a <= 1 + 1e-9:
        return None
    m_int = int(round(m))
    return min(max(int(round(a * m_int)), 0), m_int), m_int


def accuracy_interval(acc: Any, n: Any, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson interval of an accuracy measured on ``n`` images; (nan, nan) when either is unknown."""
    c = _count(acc, n)
    if c is None:
        return math.nan, math.nan
    return wilson_interval(c[0], c[1], confidence)


def accuracy_intervals(acc: Sequence[Any], n: Sequence[Any], confidence: float = CONFIDENCE
                       ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`accuracy_interval` of every (accuracy, n) pair: two float arrays (low, high)."""
    pairs = [accuracy_interval(a, m, confidence) for a, m in zip(acc, n)]
    if not pairs:
        return np.zeros(0), np.zeros(0)
    lo, hi = zip(*pairs)
    return np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)


@dataclass(frozen=True)
class AccuracyDifference:
    """A − B of two accuracies with Newcombe's interval; ``verdict`` is A's wording against B."""

    estimate: float
    low: float
    high: float

    @property
    def verdict(self) -> str:
        return verdict(self.low, self.high)


def accuracy_difference(acc_a: Any, n_a: Any, acc_b: Any, n_b: Any,
                        confidence: float = CONFIDENCE) -> AccuracyDifference:
    """Newcombe's hybrid score interval (method 10) of ``acc_a - acc_b``, from the two Wilson intervals.

    Unknown split sizes give an interval of NaN (and the verdict "tied within noise").
    """
    ca, cb = _count(acc_a, n_a), _count(acc_b, n_b)
    if ca is None or cb is None:
        try:
            est = float(acc_a) - float(acc_b)
        except (TypeError, ValueError):
            est = math.nan
        return AccuracyDifference(est, math.nan, math.nan)
    p1, p2 = ca[0] / ca[1], cb[0] / cb[1]
    l1, u1 = wilson_interval(*ca, confidence)
    l2, u2 = wilson_interval(*cb, confidence)
    d = p1 - p2
    return AccuracyDifference(d, d - math.hypot(p1 - l1, u2 - p2), d + math.hypot(u1 - p1, p2 - l2))


# --------------------------------------------------------------------------- means over seeds


@dataclass(frozen=True)
class Summary:
    """Mean, sample std (ddof=1) and two-sided Student-t confidence interval of the mean.

    ``std``/``ci_low``/``ci_high`` are NaN with fewer than two values: one seed says nothing about spread.
    """

    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float

    @property
    def half_width(self) -> float:
        return (self.ci_high - self.ci_low) / 2.0


def summarize(values: Sequence[float], confidence: float = CONFIDENCE,
              bounds: tuple[float, float] | None = None) -> Summary:
    """Summary of ``values`` with a ``confidence`` Student-t interval of the mean (``scipy.stats.t``), clipped to
    ``bounds`` when given (an accuracy's mean cannot leave [0, 1], though a t interval over 2 runs can)."""
    from scipy import stats

    xs = np.asarray([float(v) for v in values], dtype=float)
    n = int(xs.size)
    nan = math.nan
    if n == 0:
        return Summary(0, nan, nan, nan, nan)
    mean = float(math.fsum(xs) / n)
    if n < 2:
        return Summary(1, mean, nan, nan, nan)
    std = float(np.std(xs, ddof=1))
    if std == 0.0:
        return Summary(n, mean, 0.0, mean, mean)
    lo, hi = stats.t.interval(confidence, n - 1, loc=mean, scale=std / math.sqrt(n))
    if bounds is not None:
        lo, hi = max(float(lo), bounds[0]), min(float(hi), bounds[1])
    return Summary(n, mean, std, float(lo), float(hi))


@dataclass(frozen=True)
class PairedDelta:
    """Paired comparison A − B over the seeds both completed (paired t: ``scipy.stats.ttest_rel``).

    ``p_value`` is two-sided; ``t`` and ``p_value`` are NaN with fewer than two pairs or when all
    differences are identical (zero spread: the t statistic is undefined, the interval is the point).
    """

    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float
    t: float
    p_value: float
    seeds: tuple[int, ...]

    @property
    def constant(self) -> bool:
        """Two or more pairs that all gave the same difference: the interval has zero width and measures no noise."""
        return self.n >= 2 and self.std == 0.0

    @property
    def identical(self) -> bool:
        """:attr:`constant` with difference 0: A and B gave the same value on every paired seed."""
        return self.constant and abs(self.mean) <= 1e-12

    @property
    def verdict(self) -> str:
        """A's wording against B from the paired interval (:func:`verdict`); tied with fewer than 2 pairs."""
        if self.n < 2:
            return TIED
        return verdict(self.ci_low, self.ci_high)


def paired_delta(a: Mapping[int, float], b: Mapping[int, float], confidence: float = CONFIDENCE) -> PairedDelta:
    """Paired Δ = a − b of two seed → value maps; only seeds present in both count."""
    from scipy import stats

    seeds = tuple(sorted(set(a) & set(b)))
    xa = np.asarray([float(a[s]) for s in seeds], dtype=float)
    xb = np.asarray([float(b[s]) for s in seeds], dtype=float)
    diffs = xa - xb
    s = summarize(list(diffs), confidence)
    nan = math.nan
    # identical differences (up to rounding of the inputs) have no spread: no t statistic
    if s.n < 2 or not s.std > 1e-12 * max(1.0, abs(s.mean)):
        lo, hi = (s.mean, s.mean) if s.n >= 2 else (nan, nan)
        return PairedDelta(s.n, s.mean, 0.0 if s.n >= 2 else s.std, lo, hi, nan, nan, seeds)
    res = stats.ttest_rel(xa, xb)
    ci = res.confidence_interval(confidence_level=confidence)
    return PairedDelta(s.n, s.mean, s.std, float(ci.low), float(ci.high), float(res.statistic),
                       float(res.pvalue), seeds)


def difference_words(estimate: float, low: float, high: float, n: int, word: str, where: str | None = None) -> str:
    """The one wording rule for a difference whose interval may say nothing about noise (used by every report,
    through :func:`paired_words` for paired seeds):

    - ``n == 0``: ``""``; ``n == 1``: ``"undecided (one pair)"``;
    - a zero-width interval ``low == high`` at 0: ``"identical <where> (difference 0)"``;
    - a zero-width interval elsewhere: ``"<word> <where> by the same margin (zero-width interval: no noise
      measured)"``;
    - otherwise ``word`` (the verdict, e.g. ``beats`` / ``worse`` / ``tied within noise``).

    ``where`` says what the interval is over, default ``"on all <n> seeds"``; an unknown interval (NaN) with
    ``n >= 2`` gives ``word``.
    """
    if n <= 0:
        return ""
    if n < 2:
        return UNDECIDED_ONE_PAIR
    where = f"on all {n} seeds" if where is None else where
    if math.isfinite(low) and math.isfinite(high) and low == high:
        if abs(estimate) <= 1e-12 and abs(low) <= 1e-12:
            return f"identical {where} (difference 0)"
        return f"{word} {where} by the same margin (zero-width interval: no noise measured)"
    return word


def paired_words(d: PairedDelta | None, word: str | None = None) -> str:
    """How every report words a paired difference (:func:`difference_words`): :attr:`PairedDelta.verdict` (or the
    caller's ``word`` for it, e.g. "gains"); ``"identical on all N seeds (difference 0)"`` when A and B gave the
    same value on every seed, the verdict "on all N seeds by the same margin (zero-width interval: no noise
    measured)" when every seed gave the same non-zero difference, ``"undecided (one pair)"`` with one pair."""
    if d is None:
        return ""
    if d.constant:  # zero spread up to rounding: paired_delta already made the interval the point
        return difference_words(d.mean, d.mean, d.mean, d.n, d.verdict if word is None else word)
    return difference_words(d.mean, math.nan, math.nan, d.n, d.verdict if word is None else word)


def interval_text(low: float, high: float, n: int, scale: float = 1.0, fmt: str = ".3g", unit: str = "seed") -> str:
    """``"[low, high]"`` scaled and formatted, or ``"n/a (1 seed)"`` (``"n/a (N seeds)"``) when the interval is
    unknown because there are fewer than two values, ``"n/a"`` when it is unknown otherwise."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return f"n/a ({n} {unit}{'' if n == 1 else 's'})" if n < 2 else "n/a"
    return f"[{scale * low:{fmt}}, {scale * high:{fmt}}]"


def mean_interval(x: np.ndarray, confidence: float = CONFIDENCE, bounds: tuple[float, float] | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised :func:`summarize` over axis 0 of ``x`` (shape (values, ...)): the mean and the two-sided
    Student-t interval of the mean (``scipy.stats.t``), each of shape ``x.shape[1:]``, the interval clipped to
    ``bounds`` when given.  With fewer than two values the interval is NaN (no spread is measured)."""
    from scipy import stats

    x = np.asarray(x, dtype=float)
    n = x.shape[0]
    mean = x.mean(axis=0) if n else np.full(x.shape[1:], math.nan)
    if n < 2:
        nan = np.full(x.shape[1:], math.nan)
        return mean, nan, nan.copy()
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * x.std(axis=0, ddof=1) / math.sqrt(n)
    low, high = mean - half, mean + half
    if bounds is not None:
        low, high = np.clip(low, *bounds), np.clip(high, *bounds)
    return mean, low, high


# --------------------------------------------------------------------------- rank agreement


@dataclass(frozen=True)
class RankCorrelation:
    """A rank correlation with its bootstrap interval over archs (percentile method) and scipy's p-value."""

    statistic: float
    low: float
    high: float
    p_value: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        return {"statistic": _finite_or_none(self.statistic), "ci": [_finite_or_none(self.low),
                _finite_or_none(self.high)], "p_value": _finite_or_none(self.p_value), "n": self.n}


def _finite_or_none(v: float) -> float | None:
    return float(v) if v is not None and math.isfinite(v) else None


def _pairs(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if xs.shape != ys.shape or xs.ndim != 1:
        raise ValueError("rank correlation: x and y must be 1-D sequences of the same length")
    keep = np.isfinite(xs) & np.isfinite(ys)
    return xs[keep], ys[keep]


def _rank_stat(kind: str) -> Any:
    from scipy import stats

    def stat(a: np.ndarray, b: np.ndarray) -> float:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if kind == "kendall":
                return float(stats.kendalltau(a, b).statistic)
            return float(stats.spearmanr(a, b).statistic)

    return stat


#: Fewer items than this get no bootstrap interval for a rank correlation: resampling 4 or 5 items repeats most
#: of them, and a perfect ranking (which 4 items show by chance 1 time in 24) gives a degenerate [1, 1].
MIN_BOOTSTRAP_N = 6


def _rank_correlation(kind: str, x: Sequence[float], y: Sequence[float], confidence: float,
                      n_resamples: int, seed: int) -> RankCorrelation:
    from scipy import stats

    xs, ys = _pairs(x, y)
    n = int(xs.size)
    nan = math.nan
    if n < 2:
        return RankCorrelation(nan, nan, nan, nan, n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        point = stats.kendalltau(xs, ys) if kind == "kendall" else stats.spearmanr(xs, ys)
    value, p = float(point.statistic), float(point.pvalue)
    lo = hi = nan
    if n >= MIN_BOOTSTRAP_N and math.isfinite(value) and n_resamples > 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            boot = stats.bootstrap((xs, ys), _rank_stat(kind), paired=True, vectorized=False,
                                   n_resamples=n_resamples, confidence_level=confidence, method="percentile",
                                   rng=np.random.default_rng(seed))
        dist = np.asarray(boot.bootstrap_distribution, dtype=float)
        dist = dist[np.isfinite(dist)]  # resamples that drew one value n times have no ranking: dropped
        if dist.size:
            alpha = (1.0 - confidence) / 2.0
            lo, hi = (float(v) for v in np.quantile(dist, [alpha, 1.0 - alpha]))
    return RankCorrelation(value, lo, hi, p, n)


def kendall_tau(x: Sequence[float], y: Sequence[float], confidence: float = CONFIDENCE,
                n_resamples: int = 2000, seed: int = 0) -> RankCorrelation:
    """Kendall's tau-b of ``x`` and ``y`` (``scipy.stats.kendalltau``) with a paired percentile-bootstrap
    interval over the items (``scipy.stats.bootstrap``; resamples without a defined tau are dropped; no
    interval with ``n_resamples=0`` or fewer than MIN_BOOTSTRAP_N items; the p-value is scipy's, exact for small
    samples).  Pairs with a non-finite value are left out."""
    return _rank_correlation("kendall", x, y, confidence, n_resamples, seed)


def spearman_rho(x: Sequence[float], y: Sequence[float], confidence: float = CONFIDENCE,
                 n_resamples: int = 2000, seed: int = 0) -> RankCorrelation:
    """Spearman's rho (``scipy.stats.spearmanr``) with a paired percentile-bootstrap interval."""
    return _rank_correlation("spearman", x, y, confidence, n_resamples, seed)


def _order(scores: np.ndarray) -> np.ndarray:
    """Indices best first (highest score; ties by position, so the result is deterministic)."""
    return np.lexsort((np.arange(scores.size), -scores))


def top_k_recall(proxy: Sequence[float], truth: Sequence[float], k: int) -> float:
    """Fraction of the ``k`` best items by ``truth`` that are among the ``k`` best by ``proxy``
    (higher is better for both; ties broken by position)."""
    xs, ys = _pairs(proxy, truth)
    if xs.size == 0 or k < 1:
        return math.nan
    k = min(int(k), int(xs.size))
    return len(set(_order(xs)[:k].tolist()) & set(_order(ys)[:k].tolist())) / k


def regret(proxy: Sequence[float], truth: Sequence[float]) -> float:
    """How much ``truth`` the proxy's choice leaves on the table: best truth − truth of the proxy's best item
    (0 when the proxy picks the truly best; ties broken by position)."""
    xs, ys = _pairs(proxy, truth)
    if xs.size == 0:
        return math.nan
    return float(ys.max() - ys[_order(xs)[0]])


def rank_agreement(proxy: Sequence[float], truth: Sequence[float], k: int, confidence: float = CONFIDENCE,
                   n_resamples: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Kendall tau, Spearman rho (each with its bootstrap interval), top-k recall and regret, as a dict."""
    tau = kendall_tau(proxy, truth, confidence, n_resamples, seed)
    rho = spearman_rho(proxy, truth, confidence, n_resamples, seed)
    return {
        "kendall_tau": _finite_or_none(tau.statistic),
        "kendall_tau_ci": [_finite_or_none(tau.low), _finite_or_none(tau.high)],
        "kendall_tau_p": _finite_or_none(tau.p_value),
        "spearman_rho": _finite_or_none(rho.statistic),
        "spearman_rho_ci": [_finite_or_none(rho.low), _finite_or_none(rho.high)],
        "spearman_rho_p": _finite_or_none(rho.p_value),
        "top_k": int(min(k, tau.n)) if tau.n else 0,
        "top_k_recall": _finite_or_none(top_k_recall(proxy, truth, k)),
        "regret": _finite_or_none(regret(proxy, truth)),
        "n_archs": tau.n,
    }


def kendall_tau_difference(a: Sequence[float], b: Sequence[float], truth: Sequence[float],
                           confidence: float = CONFIDENCE, n_resamples: int = 2000,
                           seed: int = 0) -> RankCorrelation:
    """tau(a, truth) - tau(b, truth) (Kendall's tau-b) with a paired percentile-bootstrap interval over the items
    (the same resampled items for both predictors, ``scipy.stats.bootstrap``): whether predictor ``a`` ranks
    ``truth`` better than predictor ``b`` beyond the noise of the sample.  Items with a non-finite value are left
    out; no interval below MIN_BOOTSTRAP_N items.  ``p_value`` is NaN (a bootstrap gives none)."""
    from scipy import stats

    xa, xb, xt = (np.asarray([float(v) for v in s], dtype=float) for s in (a, b, truth))
    keep = np.isfinite(xa) & np.isfinite(xb) & np.isfinite(xt)
    xa, xb, xt = xa[keep], xb[keep], xt[keep]
    n, nan = int(xt.size), math.nan
    if n < 2:
        return RankCorrelation(nan, nan, nan, nan, n)

    def diff(p: np.ndarray, q: np.ndarray, t: np.ndarray) -> float:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return float(stats.kendalltau(p, t).statistic) - float(stats.kendalltau(q, t).statistic)

    value = diff(xa, xb, xt)
    lo = hi = nan
    if n >= MIN_BOOTSTRAP_N and math.isfinite(value) and n_resamples > 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            boot = stats.bootstrap((xa, xb, xt), diff, paired=True, vectorized=False, n_resamples=n_resamples,
                                   confidence_level=confidence, method="percentile", rng=np.random.default_rng(seed))
        dist = np.asarray(boot.bootstrap_distribution, dtype=float)
        dist = dist[np.isfinite(dist)]
        if dist.size:
            alpha = (1.0 - confidence) / 2.0
            lo, hi = (float(v) for v in np.quantile(dist, [alpha, 1.0 - alpha]))
    return RankCorrelation(value, lo, hi, nan, n)

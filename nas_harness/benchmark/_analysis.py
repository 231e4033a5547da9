"""Curves and comparisons over seeds: best-so-far regret, hypervolume, mean rank and paired differences.

Every interval is a two-sided 95 % Student-t interval of the mean over seeds (:func:`nas_harness.results.stats.
mean_interval`), clipped to the quantity's range (regret in [0, reference], normalised hypervolume in [0, 1]): with
2 or 3 seeds a t interval of a mean near a bound would otherwise cross it.  With one seed there is no interval
(NaN).  Pairwise differences are paired over seeds (:func:`~nas_harness.results.stats.paired_delta`, scipy's
``ttest_rel``) and worded by :func:`~nas_harness.results.stats.paired_words`.  Accuracies are fractions; reports
print percentage points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from nas_harness.results.stats import (
    CONFIDENCE,
    PairedDelta,
    interval_text,
    mean_interval,
    paired_delta,
    paired_words,
)


def best_so_far(acc: list[float]) -> np.ndarray:
    """Shape (n,): the best accuracy among the first k+1 trials."""
    return np.maximum.accumulate(np.asarray(acc, dtype=float))


def expected_best_without_replacement(values: np.ndarray, n: int) -> float:
    """E[max of n draws without replacement] from ``values`` (N of them): with v_1 <= ... <= v_N sorted,
    sum_k v_k C(k-1, n-1) / C(N, n) (the k-th smallest is the maximum when it and n-1 smaller ones are drawn)."""
    v = np.sort(np.asarray(values, dtype=float))
    N = len(v)
    if not 1 <= n <= N:
        raise ValueError(f"n = {n} outside 1..{N}")
    k = np.arange(1, N + 1)
    with np.errstate(divide="ignore"):
        logp = np.where(k >= n, _lcomb(k - 1, n - 1) - _lcomb(np.array(N), n), -np.inf)
    return float(np.sum(v * np.exp(logp)))


def _lcomb(a: np.ndarray, b: int) -> np.ndarray:
    from scipy.special import gammaln

    a = np.asarray(a, dtype=float)
    return gammaln(a + 1) - gammaln(b + 1) - gammaln(np.maximum(a - b, 0) + 1)


def hypervolume_curve(acc: list[float], cost: list[float], acc_range: tuple[float, float],
                      cost_range: tuple[float, float]) -> np.ndarray:
    """Shape (n,): the 2-D hypervolume (maximise accuracy, minimise cost) of the first k+1 trials, both axes
    normalised to [0, 1] by the table's ranges, the reference point at (worst accuracy, worst cost); points outside
    the box are clipped to it.  Exact (sweep over the sorted Pareto front)."""
    a0, a1 = acc_range
    c0, c1 = cost_range
    out = np.zeros(len(acc))
    front: list[tuple[float, float]] = []  # (normalised cost, normalised accuracy gain) of non-dominated points
    for k, (a, c) in enumerate(zip(acc, cost)):
        if math.isfinite(a) and math.isfinite(c):
            x = min(max((c - c0) / (c1 - c0), 0.0), 1.0) if c1 > c0 else 0.0
            y = min(max((a - a0) / (a1 - a0), 0.0), 1.0) if a1 > a0 else 0.0
            if not any(fx <= x and fy >= y for fx, fy in front):
                front = sorted([(fx, fy) for fx, fy in front if not (x <= fx and y >= fy)] + [(x, y)])
        hv, best = 0.0, 0.0
        for i, (fx, fy) in enumerate(front):  # sorted by cost: accuracy increases along the front
            nxt = front[i + 1][0] if i + 1 < len(front) else 1.0
            best = max(best, fy)
            hv += (nxt - fx) * best
        out[k] = hv
    return out


@dataclass(frozen=True)
class Curves:
    """Per strategy: the metric per seed (shape (seeds, trials)), its mean and 95 % interval per trial count
    (clipped to ``bounds``, the metric's range; NaN with one seed)."""

    metric: str  # "regret" (lower is better) or "hypervolume" (higher is better)
    strategies: list[str]
    seeds: list[int]
    values: dict[str, np.ndarray]
    mean: dict[str, np.ndarray]
    low: dict[str, np.ndarray]
    high: dict[str, np.ndarray]
    bounds: tuple[float, float] = (0.0, math.inf)

    @property
    def higher_is_better(self) -> bool:
        return self.metric == "hypervolume"


def curves(runs: list[dict[str, Any]], strategies: list[str], reference: float, multi: bool,
           acc_range: tuple[float, float] = (0.0, 1.0), cost_range: tuple[float, float] = (0.0, 1.0)) -> Curves:
    """Regret (``reference`` − best-so-far accuracy) or hypervolume curves of every strategy; the intervals are
    clipped to [0, max(reference, 0)] for regret (``reference`` is at least every accuracy found and accuracies are
    not negative) and to [0, 1] for the normalised hypervolume."""
    seeds = sorted({r["seed"] for r in runs})
    bounds = (0.0, 1.0) if multi else (0.0, max(float(reference), 0.0))
    values, mean, low, high = {}, {}, {}, {}
    for s in strategies:
        by_seed = {r["seed"]: r for r in runs if r["strategy"] == s}
        rows = []
        for seed in seeds:
            r = by_seed[seed]
            if multi:
                rows.append(hypervolume_curve(r["acc"], r["cost"], acc_range, cost_range))
            else:
                rows.append(reference - best_so_far(r["acc"]))
        values[s] = np.array(rows)
        mean[s], low[s], high[s] = mean_interval(values[s], CONFIDENCE, bounds)
    return Curves("hypervolume" if multi else "regret", list(strategies), seeds, values, mean, low, high, bounds)


def mean_ranks(c: Curves, at: int) -> dict[str, float]:
    """Mean over seeds of each strategy's rank (1 = best; ties share the mean rank) after ``at`` trials."""
    from scipy.stats import rankdata

    m = np.array([c.values[s][:, at - 1] for s in c.strategies])  # (strategies, seeds)
    ranks = rankdata(-m if c.higher_is_better else m, axis=0)
    return {s: float(r) for s, r in zip(c.strategies, ranks.mean(axis=1))}


@dataclass(frozen=True)
class Comparison:
    """Strategy ``a`` against ``b`` after ``at`` trials: a paired difference of the 'goodness' (accuracy gap closed,
    or hypervolume) over seeds; positive = ``a`` is better."""

    a: str
    b: str
    at: int
    delta: PairedDelta
    unit: str

    def sentence(self) -> str:
        """The comparison in words: who beats whom by how much with the paired 95 % interval; a comparison whose
        interval is missing (one seed) or has zero width (the same difference on every seed) is worded by
        :func:`~nas_harness.results.stats.paired_words` instead."""
        d = self.delta
        pp = self.unit == "pp"
        scale, unit = (100.0, " pp") if pp else (1.0, "")
        what = "best accuracy" if pp else "hypervolume"  # the difference is of these (regret's negative)

        def num(x: float, sign: str = "") -> str:
            return f"{scale * x:{sign}.2f}" if pp else f"{scale * x:{sign}.3g}"

        head = f"{self.a} vs {self.b} at {self.at} trials"
        if d.identical:
            return f"{head}: {paired_words(d)}"
        if d.n < 2 or d.constant:
            ci = f", {interval_text(d.ci_low, d.ci_high, d.n)}" if d.n < 2 else ""
            return f"{head}: {what} {num(d.mean, '+')}{unit}{ci}: {paired_words(d)}"
        if d.verdict == "beats":
            return (f"{self.a} beats {self.b} at {self.at} trials: {what} higher by {num(d.mean)}{unit} "
                    f"[{num(d.ci_low)}, {num(d.ci_high)}]")
        if d.verdict == "worse":
            return (f"{self.b} beats {self.a} at {self.at} trials: {what} higher by {num(-d.mean)}{unit} "
                    f"[{num(-d.ci_high)}, {num(-d.ci_low)}]")
        return (f"{self.a} and {self.b} are tied within noise at {self.at} trials: {what} {self.a} - {self.b} "
                f"{num(d.mean, '+')}{unit} [{num(d.ci_low)}, {num(d.ci_high)}]")


def pairwise(c: Curves, budgets: list[int]) -> list[Comparison]:
    """Every pair of strategies at every budget (paired over seeds)."""
    out = []
    sign = 1.0 if c.higher_is_better else -1.0  # regret: lower is better, so a's goodness is -regret
    for at in budgets:
        for i, a in enumerate(c.strategies):
            for b in c.strategies[i + 1:]:
                va = {seed: sign * float(c.values[a][k, at - 1]) for k, seed in enumerate(c.seeds)}
                vb = {seed: sign * float(c.values[b][k, at - 1]) for k, seed in enumerate(c.seeds)}
                out.append(Comparison(a, b, at, paired_delta(va, vb), "pp" if c.metric == "regret" else "hv"))
    return out

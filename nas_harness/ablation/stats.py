"""Statistics of an ablation: per-variant mean ± std and 95% CI over seeds, and the *paired* Δ vs baseline.

Seeds are paired: run ``(variant, s)`` and ``(baseline, s)`` share the data order and (where the
architectures allow) the initialisation, so the seed-to-seed noise that is common to both cancels in the
difference.  The paired comparison is a one-sample t analysis of the per-seed differences.

scipy is not a dependency of the project, so the Student-t distribution is implemented here from the
regularized incomplete beta function (Numerical Recipes continued fraction); its quantile is found by
bisection.  Tests check it against published t-table values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

__all__ = [
    "PairedDelta",
    "Summary",
    "VariantStats",
    "paired_delta",
    "summarize",
    "t_cdf",
    "t_ppf",
    "variant_table",
]


# --------------------------------------------------------------------------- Student t distribution


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    ln_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(ln_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(ln_front) * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom."""
    if df <= 0:
        raise ValueError(f"degrees of freedom must be > 0, got {df}")
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_ppf(q: float, df: float) -> float:
    """Quantile of Student's t (inverse of :func:`t_cdf`), by bisection to ~1e-12."""
    if not 0.0 < q < 1.0:
        raise ValueError(f"quantile must be in (0, 1), got {q}")
    if q == 0.5:
        return 0.0
    if q < 0.5:
        return -t_ppf(1.0 - q, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < q:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < q:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


# --------------------------------------------------------------------------- summaries


@dataclass(frozen=True)
class Summary:
    """Mean, sample std (ddof=1) and two-sided t confidence interval of a sample.

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


def summarize(values: Sequence[float], confidence: float = 0.95) -> Summary:
    """Summary of ``values`` with a ``confidence`` Student-t interval of the mean."""
    xs = [float(v) for v in values]
    n = len(xs)
    if n == 0:
        nan = float("nan")
        return Summary(0, nan, nan, nan, nan)
    mean = math.fsum(xs) / n
    if n < 2:
        nan = float("nan")
        return Summary(1, mean, nan, nan, nan)
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))
    half = t_ppf(0.5 + confidence / 2.0, n - 1) * std / math.sqrt(n)
    return Summary(n, mean, std, mean - half, mean + half)


@dataclass(frozen=True)
class PairedDelta:
    """Paired comparison variant − baseline over the seeds both completed.

    ``p_value`` is the two-sided paired t-test; NaN when fewer than two pairs or when all differences are
    identical (zero spread: the t statistic is undefined).
    """

    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float
    t: float
    p_value: float
    seeds: tuple[int, ...]


def paired_delta(
    variant: Mapping[int, float], baseline: Mapping[int, float], confidence: float = 0.95
) -> PairedDelta:
    """Paired Δ of two seed→value maps; only seeds present in both count."""
    seeds = tuple(sorted(set(variant) & set(baseline)))
    diffs = [float(variant[s]) - float(baseline[s]) for s in seeds]
    s = summarize(diffs, confidence)
    t_stat = p = float("nan")
    if s.n >= 2 and s.std > 0:
        t_stat = s.mean / (s.std / math.sqrt(s.n))
        p = 2.0 * (1.0 - t_cdf(abs(t_stat), s.n - 1))
    return PairedDelta(s.n, s.mean, s.std, s.ci_low, s.ci_high, t_stat, p, seeds)


@dataclass(frozen=True)
class VariantStats:
    """One row of the ablation table (accuracies in [0, 1]; Δ are variant − baseline)."""

    variant: str
    arch: str
    n_ok: int
    n_failed: int
    test: Summary
    val: Summary
    delta_test: PairedDelta | None
    params: int | None
    macs: int | None
    d_params: int | None
    d_macs: int | None
    train_time_s: float

    def to_row(self) -> dict[str, object]:
        """Flat dict for CSV/DataFrame output."""
        row: dict[str, object] = {
            "variant": self.variant,
            "n_ok": self.n_ok,
            "n_failed": self.n_failed,
        }
        for prefix, summ in (("test_acc", self.test), ("val_acc", self.val)):
            for k, v in asdict(summ).items():
                row[f"{prefix}_{k}" if k != "n" else f"{prefix}_n"] = v
        d = self.delta_test
        nan = float("nan")
        row.update(
            {
                "delta_test_mean": d.mean if d else nan,
                "delta_test_std": d.std if d else nan,
                "delta_test_ci_low": d.ci_low if d else nan,
                "delta_test_ci_high": d.ci_high if d else nan,
                "delta_test_t": d.t if d else nan,
                "delta_test_p": d.p_value if d else nan,
                "delta_test_pairs": d.n if d else 0,
                "params": self.params,
                "d_params": self.d_params,
                "macs": self.macs,
                "d_macs": self.d_macs,
                "train_time_s_mean": self.train_time_s,
                "arch": self.arch,
            }
        )
        return row


def variant_table(
    runs: Sequence[Mapping[str, object]],
    variants: Sequence[str],
    archs: Mapping[str, str],
    baseline: str | None = "baseline",
    confidence: float = 0.95,
) -> list[VariantStats]:
    """Aggregate run records into one :class:`VariantStats` per variant, in ``variants`` order.

    Each run is a mapping with ``variant``, ``seed``, ``state`` ('ok'|'failed'), and for ok runs
    ``test_acc``, ``val_acc``, ``params``, ``macs``, ``train_time_s``.  Δ columns are filled when the
    ``baseline`` variant is among ``variants``.
    """
    by_var: dict[str, list[Mapping[str, object]]] = {v: [] for v in variants}
    for r in runs:
        if r["variant"] in by_var:
            by_var[str(r["variant"])].append(r)

    def ok(v: str) -> list[Mapping[str, object]]:
        return [r for r in by_var[v] if r["state"] == "ok"]

    def seed_map(v: str, key: str) -> dict[int, float]:
        return {int(r["seed"]): float(r[key]) for r in ok(v) if r.get(key) is not None}  # type: ignore[arg-type]

    def first(v: str, key: str) -> int | None:
        vals = [r[key] for r in ok(v) if r.get(key) is not None]
        return int(vals[0]) if vals else None  # type: ignore[call-overload]

    has_base = baseline is not None and baseline in by_var
    base_test = seed_map(baseline, "test_acc") if has_base else {}  # type: ignore[arg-type]
    base_params = first(baseline, "params") if has_base else None  # type: ignore[arg-type]
    base_macs = first(baseline, "macs") if has_base else None  # type: ignore[arg-type]
    rows = []
    for v in variants:
        good = ok(v)
        test = seed_map(v, "test_acc")
        params, macs = first(v, "params"), first(v, "macs")
        times = [float(r["train_time_s"]) for r in good if r.get("train_time_s") is not None]  # type: ignore[arg-type]
        rows.append(
            VariantStats(
                variant=v,
                arch=archs.get(v, ""),
                n_ok=len(good),
                n_failed=len(by_var[v]) - len(good),
                test=summarize(list(test.values()), confidence),
                val=summarize(list(seed_map(v, "val_acc").values()), confidence),
                delta_test=paired_delta(test, base_test, confidence) if has_base else None,
                params=params,
                macs=macs,
                d_params=params - base_params if params is not None and base_params is not None else None,
                d_macs=macs - base_macs if macs is not None and base_macs is not None else None,
                train_time_s=math.fsum(times) / len(times) if times else float("nan"),
            )
        )
    return rows

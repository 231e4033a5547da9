"""Statistics of an ablation: per-variant mean ± std and 95% CI over seeds, and the *paired* Δ vs baseline.

Seeds are paired: run ``(variant, s)`` and ``(baseline, s)`` share the data order and (where the
architectures allow) the initialisation, so the seed-to-seed noise that is common to both cancels in the
difference.  The paired comparison is a t analysis of the per-seed differences.  The statistics themselves
(:func:`summarize`, :func:`paired_delta`) live in :mod:`nas_harness.results.stats` and use ``scipy.stats``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from nas_harness.results.stats import ACCURACY, PairedDelta, Summary, paired_delta, summarize

__all__ = [
    "BudgetStability",
    "PairedDelta",
    "Summary",
    "VariantStats",
    "budget_stability",
    "paired_delta",
    "summarize",
    "variant_table",
]


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
                test=summarize(list(test.values()), confidence, bounds=ACCURACY),
                val=summarize(list(seed_map(v, "val_acc").values()), confidence, bounds=ACCURACY),
                delta_test=paired_delta(test, base_test, confidence) if has_base else None,
                params=params,
                macs=macs,
                d_params=params - base_params if params is not None and base_params is not None else None,
                d_macs=macs - base_macs if macs is not None and base_macs is not None else None,
                train_time_s=math.fsum(times) / len(times) if times else float("nan"),
            )
        )
    return rows


@dataclass(frozen=True)
class BudgetStability:
    """Do two budgets rank the variants alike?  ``rows``: per variant (name, mean test acc and rank at each
    budget, Δ-vs-baseline verdict at each); ``tau``: Kendall's tau-b of the variant means (scipy);
    ``same_order`` / ``same_best``; ``flipped``: variants whose Δ verdict differs between the budgets."""

    rows: list[dict[str, Any]]
    tau: float
    same_order: bool
    same_best: bool
    flipped: list[str]

    @property
    def agreed(self) -> bool:
        return self.same_order and not self.flipped


def _ranks(means: list[float]) -> list[int]:
    order = sorted(range(len(means)), key=lambda i: -means[i])
    out = [0] * len(means)
    for r, i in enumerate(order, start=1):
        out[i] = r
    return out


def budget_stability(a: Sequence[VariantStats], b: Sequence[VariantStats],
                     baseline: str | None = "baseline") -> BudgetStability:
    """Compare the variant tables of the same ablation at two budgets (variants present in both with at
    least one run each).  The Δ verdicts are the paired-interval wording of
    :func:`nas_harness.results.stats.verdict` (tied within noise with fewer than two pairs)."""
    from nas_harness.results.stats import kendall_tau

    by_b = {r.variant: r for r in b}
    common = [r for r in a if r.variant in by_b and r.test.n > 0 and by_b[r.variant].test.n > 0]
    ma = [r.test.mean for r in common]
    mb = [by_b[r.variant].test.mean for r in common]
    ra, rb = _ranks(ma), _ranks(mb)
    rows: list[dict[str, Any]] = []
    flipped = []
    for r, x, y, i, j in zip(common, ma, mb, ra, rb):
        other = by_b[r.variant]
        va = r.delta_test.verdict if r.delta_test is not None and r.variant != baseline else "baseline"
        vb = other.delta_test.verdict if other.delta_test is not None and r.variant != baseline else "baseline"
        if va != vb:
            flipped.append(r.variant)
        rows.append({"variant": r.variant, "test_mean_a": x, "rank_a": i, "delta_a": r.delta_test.mean
                     if r.delta_test is not None else math.nan, "verdict_a": va, "test_mean_b": y, "rank_b": j,
                     "delta_b": other.delta_test.mean if other.delta_test is not None else math.nan,
                     "verdict_b": vb})
    tau = kendall_tau(ma, mb, n_resamples=0).statistic if len(common) >= 2 else math.nan
    same_best = bool(common) and ra.index(1) == rb.index(1)
    return BudgetStability(rows, float(tau), ra == rb, same_best, flipped)

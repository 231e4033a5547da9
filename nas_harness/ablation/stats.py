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

from nas_harness.results.stats import PairedDelta, Summary, paired_delta, summarize

__all__ = [
    "PairedDelta",
    "Summary",
    "VariantStats",
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

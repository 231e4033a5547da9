"""Results of a compound-scaling search (``search --scaling``): triples that give the same network, with
intervals, and which groups the data cannot tell apart from the best.

Many (alpha, beta, gamma) triples round to the same scaled network (same arch string, same training
resolution): they are one measurement, not several.  :func:`scaling_groups` merges them, puts the Wilson
95 % interval on each group's validation accuracy, and marks the groups *tied within noise* with the best one
(Newcombe interval of the difference includes 0, :mod:`nas_harness.results.stats`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from nas_harness.results.stats import TIED, accuracy_difference, accuracy_interval

__all__ = ["ScalingGroup", "scaling_groups", "scaling_rows"]


@dataclass
class ScalingGroup:
    """Triples that give one network: ``members`` ((alpha, beta, gamma), best first), its arch, training
    resolution, val accuracy with its Wilson interval, MACs, and its standing against the best group."""

    rank: int
    members: list[tuple[float, float, float]]
    arch: str
    resolution: int | None
    val_acc: float
    val_n: int | None
    ci_low: float
    ci_high: float
    macs: float | None
    macs_resolution: int | None
    tied_with_best: bool = False
    diff_vs_best: tuple[float, float, float] = (math.nan, math.nan, math.nan)
    numbers: list[int] = field(default_factory=list)

    @property
    def label(self) -> str:
        a, b, g = self.members[0]
        return f"a{a:g}/b{b:g}/g{g:g}"

    @property
    def job(self) -> str:
        """Its key in a job store: the network (training resolution and arch)."""
        return f"{self.resolution}px:{self.arch}"


def scaling_rows(study: Any) -> list[dict[str, Any]]:
    """One dict per COMPLETE trial of a scaling study: alpha, beta, gamma, arch, resolution, val_acc, val_n,
    macs, macs_resolution, number."""
    from optuna.trial import TrialState

    from nas_harness.records import TrialRecord

    rows = []
    from nas_harness.results.frame import check_stored_trial, damaged, stored_trials

    for t in stored_trials(study, states=(TrialState.COMPLETE,)):
        check_stored_trial(study, t)
        rec = TrialRecord.from_attrs(t.user_attrs)
        if rec.val_acc is None or rec.arch is None:
            continue
        ua = t.user_attrs
        for key in ("alpha", "beta", "gamma", "resolution"):
            v = ua.get(key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < 1e6):
                raise damaged(study, key, v, "a positive number", t.number)
        rows.append({"alpha": float(t.params.get("alpha", ua.get("alpha", math.nan))),
                     "beta": float(t.params.get("beta", ua.get("beta", math.nan))),
                     "gamma": float(t.params.get("gamma", ua.get("gamma", math.nan))),
                     "arch": rec.arch, "resolution": ua.get("resolution"), "val_acc": rec.val_acc,
                     "val_n": rec.val_n, "macs": rec.macs, "macs_resolution": rec.macs_resolution,
                     "number": t.number})
    return rows


def scaling_groups(rows: Sequence[dict[str, Any]]) -> list[ScalingGroup]:
    """Group rows (:func:`scaling_rows`) by network, best validation accuracy first; mark the groups tied
    within noise with the best."""
    by_net: dict[tuple[str, Any], list[dict[str, Any]]] = {}
    for r in rows:
        by_net.setdefault((str(r["arch"]), r.get("resolution")), []).append(r)
    groups = []
    for (arch, res), members in by_net.items():
        members = sorted(members, key=lambda r: (-float(r["val_acc"]), r["alpha"], r["beta"], r["gamma"]))
        top = members[0]
        n = top.get("val_n")
        lo, hi = accuracy_interval(top["val_acc"], n)
        groups.append(ScalingGroup(
            rank=0, members=[(m["alpha"], m["beta"], m["gamma"]) for m in members], arch=arch,
            resolution=int(res) if res is not None else None, val_acc=float(top["val_acc"]),
            val_n=int(n) if n is not None else None, ci_low=lo, ci_high=hi, macs=top.get("macs"),
            macs_resolution=top.get("macs_resolution"), numbers=[int(m.get("number", -1)) for m in members]))
    groups.sort(key=lambda g: (-g.val_acc, g.macs if g.macs is not None else math.inf, g.members[0]))
    for i, g in enumerate(groups, start=1):
        g.rank = i
    if groups:
        best = groups[0]
        for g in groups:
            d = accuracy_difference(g.val_acc, g.val_n, best.val_acc, best.val_n)
            g.diff_vs_best = (d.estimate, d.low, d.high)
            g.tied_with_best = g is best or d.verdict == TIED
    return groups

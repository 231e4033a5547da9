"""Accuracy-vs-cost Pareto fronts and their 2-D hypervolume.

Only COMPLETE trials that trained their whole budget are eligible: a pruned or ASHA-stopped trial's accuracy
is not comparable to a fully trained one, and putting it on the front would flatter or hide architectures.
Reference archs (B0 and friends, user attr ``reference``) are kept off the *search* front by default so that
"did the search beat the hand-designed baseline?" is a comparison, not a tautology.

Hypervolume is computed exactly in (cost, accuracy) space with cost minimised and accuracy maximised, against
a stated reference point ``(ref_cost, ref_acc)``; it is reported normalised by the box
``[0, ref_cost] x [ref_acc, 1]`` so it is a unitless fraction in [0, 1] comparable across studies that share
the reference point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from nas_harness.errors import ConfigError
from nas_harness.objectives import COST_KEYS, MS_COSTS, TABLE_PLATFORMS

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

#: The cost columns of a study frame: the trial-record keys of the objective's costs (MACs, params, latency, and a
#: benchmark table's measurements; those are columns of a table study's frame only).
COSTS = tuple(COST_KEYS.values())
_PLATFORM_NAMES = {"tpuv2": "TPUv2", "tpuv3": "TPUv3", "a100": "A100", "3090": "RTX 3090", "zcu102": "ZCU102",
                   "vck190": "VCK190"}
#: How each cost is named in sentences and axis titles.
COST_NAMES = {"macs": "MACs", "params": "parameters", "latency_ms": "latency", "macs_thop": "MACs (thop)",
              **{f"latency_{p}": f"{_PLATFORM_NAMES[p]} latency" for p in ("zcu102", "vck190")},
              **{f"ms_per_image_{p}": f"{_PLATFORM_NAMES[p]} time per image, 1/throughput" for p in TABLE_PLATFORMS}}
METRICS = ("val_acc", "val_acc_final", "test_acc", "reward")


@dataclass(frozen=True)
class ReferencePoint:
    """Hypervolume reference point: the worst cost and worst accuracy that still count."""

    cost: float
    acc: float = 0.0

    def __post_init__(self) -> None:
        if not (self.cost > 0):
            raise ConfigError(f"reference point: cost must be > 0, got {self.cost}")
        if not (0.0 <= self.acc < 1.0):
            raise ConfigError(f"reference point: acc must be in [0, 1), got {self.acc}")


def study_cost(df: pd.DataFrame) -> str:
    """The cost column a study is judged on, from its ``[objective] cost`` (``macs``, ``params`` or
    ``latency_ms``, mapped by :data:`nas_harness.objectives.COST_KEYS`): the one place every summary line,
    figure, front, hypervolume, report, export and confirmation takes its cost axis from.  MACs when the study
    did not record its objective (an older or foreign study) or no trial has the wanted cost yet."""
    objective = (df.attrs.get("config") or {}).get("objective") or {}
    wanted = COST_KEYS.get(str(objective.get("cost", "macs")), "macs") if isinstance(objective, dict) else "macs"
    return wanted if wanted in df and df[wanted].notna().any() else "macs"


def cost_text(value: float | None, cost: str) -> str:
    """A cost with its unit, for sentences and headers: ``50.31 MMACs``, ``0.473M params``, ``3.21 ms`` (any cost
    in milliseconds) ('' for a missing value)."""
    if value is None or value != value:
        return ""
    v = float(value)
    if cost in MS_COSTS:
        return f"{v:.3g} ms"
    return f"{v / 1e6:.3f}M params" if cost == "params" else f"{v / 1e6:.2f} MMACs"


def _check(cost: str, metric: str) -> None:
    if cost not in COSTS:
        raise ConfigError(f"cost: '{cost}' is not allowed (allowed: {', '.join(COSTS)})")
    if metric not in METRICS:
        raise ConfigError(f"metric: '{metric}' is not allowed (allowed: {', '.join(METRICS)})")


def pareto_mask(cost: np.ndarray, acc: np.ndarray) -> np.ndarray:
    """True for points no other point dominates (cost <= and acc >= with one strict); ties all stay."""
    cost = np.asarray(cost, dtype=float)
    acc = np.asarray(acc, dtype=float)
    if cost.shape != acc.shape or cost.ndim != 1:
        raise ValueError("pareto_mask: cost and acc must be 1-D arrays of the same length")
    if cost.size == 0:
        return np.zeros(0, dtype=bool)
    le = cost[None, :] <= cost[:, None]  # [i, j]: j costs no more than i
    ge = acc[None, :] >= acc[:, None]
    strict = (cost[None, :] < cost[:, None]) | (acc[None, :] > acc[:, None])
    dominated = (le & ge & strict).any(axis=1)
    return ~dominated


def eligible(df: pd.DataFrame, cost: str = "macs", metric: str = "val_acc",
             include_reference: bool = False) -> pd.DataFrame:
    """COMPLETE, full-budget trials with a finite cost and metric (optionally without references), each arch
    once: a later trial of an arch already listed (a cached repeat) adds no information."""
    _check(cost, metric)
    mask = (df["state"] == "COMPLETE") & df["full_budget"] & df[cost].notna() & df[metric].notna()
    if not include_reference:
        mask &= ~df["is_reference"]
    out = df[mask]
    if "arch" in out and out["arch"].notna().any():
        out = out.sort_values("number").drop_duplicates(subset=["arch", "is_reference"], keep="first")
    return out


def pareto_front(df: pd.DataFrame, cost: str = "macs", metric: str = "val_acc",
                 include_reference: bool = False) -> pd.DataFrame:
    """Rows of the Pareto front (max ``metric``, min ``cost``), sorted by cost ascending.

    Adds ``front_rank`` (1 = most accurate point on the front), the order used to label and export archs.
    """
    pts = eligible(df, cost, metric, include_reference)
    front = pts[pareto_mask(pts[cost].to_numpy(), pts[metric].to_numpy())]
    front = front.sort_values([cost, metric, "number"], ascending=[True, False, True]).copy()
    order = front.sort_values([metric, cost, "number"], ascending=[False, True, True]).index
    front["front_rank"] = 0
    front.loc[order, "front_rank"] = np.arange(1, len(order) + 1)
    return front


def hypervolume_2d(points: np.ndarray, reference: np.ndarray) -> float:
    """Exact hypervolume of 2-D *minimisation* points w.r.t. ``reference`` (points not better are ignored)."""
    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    ref = np.asarray(reference, dtype=float).reshape(2)
    pts = pts[(pts[:, 0] < ref[0]) & (pts[:, 1] < ref[1])]
    if len(pts) == 0:
        return 0.0
    pts = pts[np.lexsort((pts[:, 1], pts[:, 0]))]  # by x, then y
    # Sweep in x: a point is on the front iff its y beats every cheaper point's, so the front comes out with
    # strictly increasing x and strictly decreasing y; each front point owns the slab up to the next one.
    front_x: list[float] = []
    front_y: list[float] = []
    for x, y in pts:
        if not front_y or y < front_y[-1]:
            front_x.append(float(x))
            front_y.append(float(y))
    xs = np.append(front_x, ref[0])
    volume = float(np.sum(np.diff(xs) * (ref[1] - np.asarray(front_y))))
    return float(volume)


def default_reference_point(frames: pd.DataFrame | list[pd.DataFrame], cost: str = "macs",
                            metric: str = "val_acc") -> ReferencePoint:
    """1.1 x the largest eligible cost (references included) and accuracy 0, over one or several studies.

    Pass all studies you want to compare at once so they share one reference point.
    """
    frames = frames if isinstance(frames, list) else [frames]
    costs = [eligible(f, cost, metric, include_reference=True)[cost] for f in frames]
    top = max((float(c.max()) for c in costs if len(c)), default=0.0)
    if top <= 0:
        raise ConfigError(f"reference point: no completed full-budget trial with a '{cost}' value")
    return ReferencePoint(cost=1.1 * top, acc=0.0)


def _normalised_hv(cost_v: np.ndarray, acc_v: np.ndarray, ref: ReferencePoint) -> float:
    pts = np.column_stack([cost_v, -acc_v])
    hv = hypervolume_2d(pts, np.array([ref.cost, -ref.acc]))
    return hv / (ref.cost * (1.0 - ref.acc))


def hypervolume(df: pd.DataFrame, reference: ReferencePoint | None = None, cost: str = "macs",
                metric: str = "val_acc", include_reference: bool = False) -> float:
    """Normalised hypervolume (fraction of the reference box) of a study's eligible trials."""
    ref = reference or default_reference_point(df, cost, metric)
    pts = eligible(df, cost, metric, include_reference)
    return _normalised_hv(pts[cost].to_numpy(float), pts[metric].to_numpy(float), ref)


def hypervolume_history(df: pd.DataFrame, reference: ReferencePoint | None = None, cost: str = "macs",
                        metric: str = "val_acc", include_reference: bool = False) -> pd.DataFrame:
    """Normalised hypervolume after each trial (in trial-number order): the search's progress curve.

    Columns: ``number``, ``step`` (1-based position among the counted trials), ``hypervolume``.
    """
    import pandas as pd

    ref = reference or default_reference_point(df, cost, metric)
    rows = df if include_reference else df[~df["is_reference"]]
    rows = rows.sort_values("number")
    ok = eligible(rows, cost, metric, include_reference=True).index
    front_c: np.ndarray = np.zeros(0)
    front_a: np.ndarray = np.zeros(0)
    out = []
    hv = 0.0
    for step, (idx, row) in enumerate(rows.iterrows(), start=1):
        if idx in ok:
            front_c = np.append(front_c, float(row[cost]))
            front_a = np.append(front_a, float(row[metric]))
            keep = pareto_mask(front_c, front_a)
            front_c, front_a = front_c[keep], front_a[keep]
            hv = _normalised_hv(front_c, front_a, ref)
        out.append({"number": int(row["number"]), "step": step, "hypervolume": hv})
    return pd.DataFrame(out, columns=["number", "step", "hypervolume"])


def best_so_far(df: pd.DataFrame, metric: str = "reward", include_reference: bool = False) -> pd.DataFrame:
    """Best ``metric`` among eligible (COMPLETE, full-budget) trials after each trial, in number order.

    Columns: ``number``, ``step`` (1-based), ``metric`` and ``best_number`` (the trial holding that best, the
    first one on ties; NaN before any trial counted), so a plot can show the best trial's own interval.
    """
    import pandas as pd

    _check("macs", metric)
    rows = df if include_reference else df[~df["is_reference"]]
    rows = rows.sort_values("number")
    ok = (rows["state"] == "COMPLETE") & rows["full_budget"] & rows[metric].notna()
    values = rows[metric].where(ok).cummax().ffill()  # cummax leaves NaN where a trial did not count
    best_number, holder, top = [], math.nan, -math.inf
    for good, value, number in zip(ok.to_numpy(), rows[metric].to_numpy(float), rows["number"].to_numpy()):
        if good and value > top:
            holder, top = float(number), value
        best_number.append(holder)
    return pd.DataFrame({"number": rows["number"].to_numpy(), "step": np.arange(1, len(rows) + 1),
                         metric: values.to_numpy(), "best_number": best_number})


def dominated_by(front: pd.DataFrame, cost_value: float, acc_value: float, cost: str = "macs",
                 metric: str = "val_acc") -> pd.DataFrame:
    """Front rows that dominate a given point (e.g. a reference arch): cheaper-or-equal and at least as
    accurate, strictly better in one."""
    c, a = front[cost], front[metric]
    return front[(c <= cost_value) & (a >= acc_value) & ((c < cost_value) | (a > acc_value))]

"""Accuracy-vs-cost scatter plots: the Pareto-front figure, its colour-by-choice variant, and overlaid fronts.

Every trial is shown, but only COMPLETE full-budget trials are drawn as solid points: pruned/stopped trials are
hollow grey (their accuracy is from a shorter budget), archs rejected over budget (never trained) are ticks and
failed trials crosses on the bottom edge at their MACs, so a reader sees where the search spent budget without
mistaking partial results for real ones.  Reference archs are red stars with their names.  Front points and
references carry error bars: the Wilson 95 % interval of their accuracy on its split (sampling noise of the
split, one training run; nothing is drawn where the split size was not recorded).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib import patheffects

from nas_harness.errors import ConfigError
from nas_harness.plots._style import (
    PALETTE,
    SINGLE_COLUMN,
    STUDY_PALETTE,
    cost_unit,
    legend,
    log_cost_axis,
    new_figure,
    paper_style,
    spread_labels,
)
from nas_harness.results import accuracy_note, choice_columns, eligible, pareto_front

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.figure import Figure

_HALO = [patheffects.withStroke(linewidth=2.0, foreground="white")]  # labels stay readable over lines
_METRIC_LABEL = {"val_acc": "Validation accuracy (%)", "val_acc_final": "Final validation accuracy (%)",
                 "test_acc": "Test accuracy (%)", "reward": "Reward"}
_COST_NAME = {"macs": "MACs", "params": "parameters", "latency_ms": "latency"}
#: [objective] key of each cost's hard budget.
_BUDGET_KEY = {"macs": "max_macs", "params": "max_params", "latency_ms": "max_latency_ms"}


def _cost_unit(cost: str, values: Any) -> tuple[float, str]:
    """Divisor and unit of the cost axis (latency is plotted in ms as recorded)."""
    return (1.0, "ms") if cost == "latency_ms" else cost_unit(cost, values)


def _y(df: pd.DataFrame, metric: str) -> np.ndarray:
    scale = 1.0 if metric == "reward" else 100.0
    return df[metric].to_numpy(float) * scale


_SPLIT = {"val_acc": "val", "val_acc_final": "val", "test_acc": "test"}


def _yerr(df: pd.DataFrame, metric: str) -> np.ndarray | None:
    """2xN error-bar lengths (percentage points) from the frame's Wilson interval columns, or None."""
    split = _SPLIT.get(metric)
    if split is None or f"{split}_ci_low" not in df or metric == "val_acc_final":
        return None
    lo, hi = df[f"{split}_ci_low"].to_numpy(float), df[f"{split}_ci_high"].to_numpy(float)
    if not np.isfinite(lo).any():
        return None
    y = df[metric].to_numpy(float)
    err = np.vstack([y - lo, hi - y]) * 100.0
    return np.where(np.isfinite(err), np.clip(err, 0, None), 0.0)


def _error_bars(ax: Any, x: np.ndarray, y: np.ndarray, yerr: np.ndarray | None, color: str, zorder: float) -> None:
    if yerr is not None and len(x):
        ax.errorbar(x, y, yerr=yerr, fmt="none", ecolor=color, elinewidth=0.6, capsize=1.5, capthick=0.6,
                    alpha=0.8, zorder=zorder)


def _draw_front(ax: Any, front: pd.DataFrame, cost: str, metric: str, div: float, color: str,
                label: str | None, xmax: float) -> None:
    if front.empty:
        return
    x = front[cost].to_numpy(float) / div
    y = _y(front, metric)
    # Attainment line: at any cost between two front points the best reachable accuracy is the cheaper
    # point's, hence a post-step; it runs on to the right edge of the data.
    ax.step(np.append(x, xmax), np.append(y, y[-1]), where="post", color=color, lw=1.2, zorder=3, label=label)
    ax.scatter(x, y, s=22, facecolor="none", edgecolor=color, linewidth=1.0, zorder=4)
    _error_bars(ax, x, y, _yerr(front, metric), color, 3.5)


def _draw_references(ax: Any, df: pd.DataFrame, cost: str, metric: str, div: float) -> list[Any]:
    refs = eligible(df, cost, metric, include_reference=True)
    refs = refs[refs["is_reference"]]
    if refs.empty:
        return []
    _error_bars(ax, refs[cost].to_numpy(float) / div, _y(refs, metric), _yerr(refs, metric), PALETTE["reference"],
                5.5)
    ax.scatter(refs[cost] / div, _y(refs, metric), marker="*", s=70, color=PALETTE["reference"],
               edgecolor="white", linewidth=0.4, zorder=6, label="reference (B0 family)")
    return [ax.annotate(str(r["name"]), (r[cost] / div, _y(r.to_frame().T, metric)[0]), xytext=(5, -7),
                        textcoords="offset points", fontsize=6, fontweight="bold", path_effects=_HALO,
                        color=PALETTE["reference"], zorder=7)
            for _, r in refs.iterrows()]


def _draw_others(ax: Any, df: pd.DataFrame, cost: str, metric: str, div: float) -> None:
    has_cost = df[cost].notna()
    stopped = df[has_cost & df[metric].notna() & ~df["full_budget"] & df["state"].isin(["PRUNED", "COMPLETE"])]
    if not stopped.empty:
        ax.scatter(stopped[cost] / div, _y(stopped, metric), s=12, facecolor="none",
                   edgecolor=PALETTE["stopped"], linewidth=0.7, zorder=1, label="pruned / stopped early")
    rejected = df[has_cost & df["rejected"].notna()] if "rejected" in df else df.iloc[:0]
    if not rejected.empty:
        # Rejected from the analytic count before training: no accuracy, so a tick on the bottom edge.
        ax.scatter(rejected[cost] / div, np.full(len(rejected), 0.03), marker="|", s=40,
                   color=PALETTE["infeasible"], linewidth=1.0, transform=ax.get_xaxis_transform(), zorder=2,
                   clip_on=False, label=f"rejected: over budget ({len(rejected)})")
    failed = df[has_cost & (df["state"] == "FAIL")]
    if not failed.empty:
        # Failed trials have no accuracy: put them on the bottom edge at their MACs.
        ax.scatter(failed[cost] / div, np.full(len(failed), 0.03), marker="x", s=14, color=PALETTE["failed"],
                   linewidth=0.8, transform=ax.get_xaxis_transform(), zorder=2, clip_on=False,
                   label=f"failed ({len(failed)})")


def _finish(ax: Any, df: pd.DataFrame, cost: str, metric: str, div: float, unit: str, title: str) -> None:
    costs = df[cost].dropna().to_numpy(float) / div
    lo, hi = (costs.min(), costs.max()) if costs.size else (1.0, 10.0)
    log_cost_axis(ax, lo, hi)
    res = df["macs_resolution"].dropna().unique() if "macs_resolution" in df else []
    at = f" at {int(res[0])} px" if len(res) == 1 else ""  # MACs are counted at the study's macs_resolution
    if cost == "latency_ms":  # predicted from the study's latency table ([latency] device, threads, batch)
        ax.set_xlabel(f"Latency ({unit}, log scale)")
    else:
        ax.set_xlabel(f"MACs{at} ({unit}, log scale)" if cost == "macs" else f"Parameters ({unit}, log scale)")
    note = accuracy_note(df)
    ax.set_ylabel(_METRIC_LABEL[metric] + (f"\n{note}" if note else ""))
    ax.set_title(title)


def _study(df: pd.DataFrame) -> str:
    return str(df.attrs.get("study_name") or "study")


def plot_accuracy_vs_cost(df: pd.DataFrame, cost: str = "macs", metric: str = "val_acc", label_top: int = 5,
                          title: str | None = None, size: tuple[float, float] = SINGLE_COLUMN) -> Figure:
    """All trials on accuracy vs log cost, the search's Pareto front as a step line, references starred,
    and the ``label_top`` most accurate front archs labelled with their short names (``#<trial>``)."""
    with paper_style():
        fig, ax = new_figure(size)
        div, unit = _cost_unit(cost, df[cost].dropna())
        ok = eligible(df, cost, metric)
        feasible, infeasible = ok[ok["feasible"]], ok[~ok["feasible"]]
        ax.scatter(feasible[cost] / div, _y(feasible, metric), s=12, color=PALETTE["search"], alpha=0.75,
                   linewidth=0, zorder=2, label=f"search trials ({len(feasible)})")
        if not infeasible.empty:
            ax.scatter(infeasible[cost] / div, _y(infeasible, metric), s=12, color=PALETTE["infeasible"],
                       linewidth=0, zorder=2, label="over budget (infeasible)")
        _draw_others(ax, df, cost, metric, div)
        _finish(ax, df, cost, metric, div, unit, title or f"{_study(df)}: accuracy vs {_COST_NAME[cost]}")
        front = pareto_front(df, cost, metric)
        _draw_front(ax, front, cost, metric, div, PALETTE["front"], f"Pareto front ({len(front)})",
                    ax.get_xlim()[1])
        budget = _budget(df, cost)
        if budget:
            ax.axvline(budget / div, ls=":", lw=1.0, color="#555555", zorder=1, label="budget")
        if metric == "val_acc":
            _draw_iso_reward(ax, df, div, cost)
        texts = _draw_references(ax, df, cost, metric, div)
        for _, r in front.sort_values("front_rank").head(label_top).iterrows():
            texts.append(ax.annotate(str(r["name"]), (r[cost] / div, _y(r.to_frame().T, metric)[0]),
                                     xytext=(-4, 5), textcoords="offset points", ha="right", fontsize=6,
                                     path_effects=_HALO, color="#333333", zorder=7))
        _clip_y(ax, df, metric)
        legend(ax, loc="best", frameon=True, framealpha=0.85, borderpad=0.4, handletextpad=0.3)
        spread_labels(ax, texts)
    return fig


def _budget(df: pd.DataFrame, cost: str) -> float | None:
    """The hard MAC/param/latency budget of a budget/multi study (``[objective].max_macs`` etc.), if any."""
    objective = (df.attrs.get("config") or {}).get("objective")
    if not isinstance(objective, dict):
        return None
    value = objective.get(_BUDGET_KEY[cost]) or 0
    return float(value) if value > 0 else None


def _draw_iso_reward(ax: Any, df: pd.DataFrame, div: float, cost: str = "macs") -> None:
    """Reward studies: the MnasNet iso-reward curve through the best trial, ACC = R* / (COST/T)^w, and the
    target T -- every point above the curve would have scored better, which is how a reader sees the
    accuracy/cost trade-off the reward actually made (drawn on the axis of the reward's own cost)."""
    cfg = (df.attrs.get("config") or {}).get("objective")
    if df.attrs.get("objective") != "reward" or not isinstance(cfg, dict):
        return
    try:
        from nas_harness.objectives import Objective

        obj = Objective.from_config(cfg)
    except Exception:  # an older/foreign config: skip the decoration, never the figure
        return
    if obj.cost_key != cost:
        return
    ok = eligible(df, cost, "reward")
    if ok.empty:
        return
    best = float(ok["reward"].max())
    lo, hi = ax.get_xlim()
    m = np.geomspace(lo, hi, 200) * div
    alpha, beta = obj.exponents
    w = np.where(m <= obj.target, alpha, beta)
    acc = best / (m / obj.target) ** w
    ax.plot(m / div, acc * 100.0, ls="--", lw=0.8, color="#6A3D9A", zorder=1, label=f"iso-reward {best:.3f}")
    if lo < obj.target / div < hi:
        ax.axvline(obj.target / div, ls=":", lw=0.8, color="#6A3D9A", zorder=1,
                   label="target latency T" if cost == "latency_ms" else "target MACs T")
    ax.set_xlim(lo, hi)


def _clip_y(ax: Any, df: pd.DataFrame, metric: str) -> None:
    """Y range from the trials that count (complete, pruned), not chance-level outliers of broken runs."""
    rows = df[df[metric].notna() & df["state"].isin(["COMPLETE", "PRUNED"])]
    ys = _y(rows, metric)
    if ys.size:
        lo, hi = np.percentile(ys, 2), ys.max()
        err = _yerr(rows, metric)
        if err is not None:  # error bars of the best points stay inside
            hi = max(hi, float(np.nanmax(ys + err[1])))
        span = max(hi - lo, 1e-3)
        ax.set_ylim(lo - 0.18 * span, hi + 0.08 * span)  # room at the bottom for failed-trial crosses


def _fmt_choice(v: Any) -> str:
    """Choices come back as floats when some trial lacks the param (NaN column): show 3, not 3.0."""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def plot_by_choice(df: pd.DataFrame, choice: str, cost: str = "macs", metric: str = "val_acc",
                   title: str | None = None, size: tuple[float, float] = SINGLE_COLUMN) -> Figure:
    """Accuracy vs cost of completed full-budget trials coloured by one search choice (e.g. ``s5_se``)."""
    import seaborn as sns

    choices = choice_columns(df)
    if choice not in choices:
        raise ConfigError(f"choice: '{choice}' is not a parameter of this study (allowed: {', '.join(choices)})")
    with paper_style():
        fig, ax = new_figure(size)
        div, unit = _cost_unit(cost, df[cost].dropna())
        ok = eligible(df, cost, metric).dropna(subset=[choice])
        values = sorted(ok[choice].unique(), key=lambda v: (str(type(v)), v))
        colors = dict(zip([str(v) for v in values], sns.color_palette(STUDY_PALETTE, len(values))))
        front = pareto_front(df, cost, metric)
        _finish(ax, df, cost, metric, div, unit, title or f"{_study(df)}: accuracy vs {_COST_NAME[cost]} by {choice}")
        _draw_front(ax, front, cost, metric, div, "#999999", "Pareto front", ax.get_xlim()[1])
        for v in values:
            sub = ok[ok[choice] == v]
            ax.scatter(sub[cost] / div, _y(sub, metric), s=14, color=colors[str(v)], alpha=0.85, linewidth=0,
                       zorder=3, label=f"{_fmt_choice(v)} ({len(sub)})")
        texts = _draw_references(ax, df, cost, metric, div)
        _clip_y(ax, df, metric)
        legend(ax, title=choice, loc="best", frameon=True, framealpha=0.85)
        spread_labels(ax, texts)
    return fig


def plot_fronts(frames: Sequence[pd.DataFrame], labels: Sequence[str] | None = None, cost: str = "macs",
                metric: str = "val_acc", title: str | None = None,
                size: tuple[float, float] = SINGLE_COLUMN) -> Figure:
    """The Pareto fronts of several studies overlaid (e.g. TPE vs NSGA-II vs random), references starred."""
    import pandas as pd
    import seaborn as sns

    labels = list(labels or [_study(f) for f in frames])
    both = pd.concat(list(frames), ignore_index=True)
    with paper_style():
        fig, ax = new_figure(size)
        div, unit = _cost_unit(cost, both[cost].dropna())
        _finish(ax, both, cost, metric, div, unit, title or "Pareto fronts: " + " vs ".join(labels))
        for f, label, color in zip(frames, labels, sns.color_palette(STUDY_PALETTE, len(frames))):
            ok = eligible(f, cost, metric)
            ax.scatter(ok[cost] / div, _y(ok, metric), s=6, color=color, alpha=0.3, linewidth=0, zorder=1)
            _draw_front(ax, pareto_front(f, cost, metric), cost, metric, div, color, label, ax.get_xlim()[1])
        refs = both.drop_duplicates(subset=["arch", "reference"]) if "arch" in both else both
        texts = _draw_references(ax, refs, cost, metric, div)
        _clip_y(ax, both, metric)
        legend(ax, loc="best", frameon=True, framealpha=0.85)
        spread_labels(ax, texts)
    return fig

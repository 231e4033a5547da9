"""Accuracy-vs-cost scatter plots: the Pareto-front figure, its colour-by-choice variant, and overlaid fronts.

Every trial is shown, but only COMPLETE full-budget trials are drawn as solid points: pruned/stopped trials are
hollow grey (their accuracy is from a shorter budget), archs rejected over budget (never trained) are ticks and
failed trials crosses on the bottom edge at their MACs, so a reader sees where the search spent budget without
mistaking partial results for real ones.  Reference archs are red stars with their names.  Every point with
an accuracy carries an error bar: the Wilson 95 % interval of that accuracy on its split (sampling noise of the
split, one training run; nothing is drawn where the split size was not recorded), named so in the legend.  The
y range covers every bar; the legend sits under the axes, so it hides no point; labels sit on a white box, so
no line crosses them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib import patheffects

from nas_harness.errors import ConfigError
from nas_harness.objectives import MS_COSTS
from nas_harness.plots._style import (
    PALETTE,
    SINGLE_COLUMN_LEGEND,
    STUDY_PALETTE,
    cost_unit,
    legend_below,
    log_cost_axis,
    new_figure,
    pad_ylim,
    paper_style,
    spread_labels,
)
from nas_harness.results import COST_NAMES, accuracy_note, choice_columns, eligible, pareto_front

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.figure import Figure

_HALO = [patheffects.withStroke(linewidth=2.0, foreground="white")]  # labels stay readable over lines
_LABEL_BOX = {"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.85}
_METRIC_LABEL = {"val_acc": "Validation accuracy (%)", "val_acc_final": "Final validation accuracy (%)",
                 "test_acc": "Test accuracy (%)", "reward": "Reward"}
#: [objective] key of each cost's hard budget.
_BUDGET_KEY = {"macs": "max_macs", "params": "max_params", "latency_ms": "max_latency_ms"}


def _cost_unit(cost: str, values: Any) -> tuple[float, str]:
    """Divisor and unit of the cost axis (latencies are plotted in ms as recorded)."""
    return (1.0, "ms") if cost in MS_COSTS else cost_unit(cost, values)


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


def interval_label(df: pd.DataFrame, metric: str) -> str:
    """Legend text of the error bars: '95% Wilson interval (val split, 1000 images)'."""
    split = _SPLIT.get(metric, "val")
    sizes = sorted({int(v) for v in df.get(f"{split}_n", []) if v == v}) if f"{split}_n" in df else []
    n = f", {sizes[0]} images" if len(sizes) == 1 else ""
    return f"95% Wilson interval ({split} split{n})"


def _error_bars(ax: Any, x: np.ndarray, y: np.ndarray, yerr: np.ndarray | None, color: str, zorder: float,
                label: str | None = None) -> None:
    if yerr is not None and len(x):
        ax.errorbar(x, y, yerr=yerr, fmt="none", ecolor=color, elinewidth=0.6, capsize=1.5, capthick=0.6,
                    alpha=0.8, zorder=zorder, label=label)


class _Bars:
    """Draws error bars and gives the legend entry 'Wilson 95 % interval' to the first set drawn."""

    def __init__(self, ax: Any, df: pd.DataFrame, metric: str) -> None:
        self.ax, self.metric, self.label = ax, metric, interval_label(df, metric)

    def __call__(self, rows: pd.DataFrame, cost: str, div: float, color: str, zorder: float) -> None:
        err = _yerr(rows, self.metric)
        if err is None or rows.empty:
            return
        _error_bars(self.ax, rows[cost].to_numpy(float) / div, _y(rows, self.metric), err, color, zorder,
                    self.label)
        self.label = None


def _draw_front(ax: Any, front: pd.DataFrame, cost: str, metric: str, div: float, color: str,
                label: str | None, xmax: float, bars: _Bars) -> None:
    if front.empty:
        return
    x = front[cost].to_numpy(float) / div
    y = _y(front, metric)
    # Attainment line: at any cost between two front points the best reachable accuracy is the cheaper
    # point's, hence a post-step; it runs on to the right edge of the data.
    ax.step(np.append(x, xmax), np.append(y, y[-1]), where="post", color=color, lw=1.2, zorder=3, label=label)
    ax.scatter(x, y, s=22, facecolor="none", edgecolor=color, linewidth=1.0, zorder=4)
    bars(front, cost, div, color, 3.5)


def _draw_references(ax: Any, df: pd.DataFrame, cost: str, metric: str, div: float, bars: _Bars) -> list[Any]:
    refs = eligible(df, cost, metric, include_reference=True)
    refs = refs[refs["is_reference"]]
    if refs.empty:
        return []
    bars(refs, cost, div, PALETTE["reference"], 5.5)
    ax.scatter(refs[cost] / div, _y(refs, metric), marker="*", s=70, color=PALETTE["reference"],
               edgecolor="white", linewidth=0.4, zorder=6, label="reference (B0 family)")
    return [ax.annotate(str(r["name"]), (r[cost] / div, _y(r.to_frame().T, metric)[0]), xytext=(5, -7),
                        textcoords="offset points", fontsize=6, fontweight="bold", path_effects=_HALO,
                        bbox=_LABEL_BOX, color=PALETTE["reference"], zorder=7)
            for _, r in refs.iterrows()]


def _draw_others(ax: Any, df: pd.DataFrame, cost: str, metric: str, div: float, bars: _Bars) -> None:
    has_cost = df[cost].notna()
    stopped = df[has_cost & df[metric].notna() & ~df["full_budget"] & df["state"].isin(["PRUNED", "COMPLETE"])]
    if not stopped.empty:
        bars(stopped, cost, div, PALETTE["stopped"], 0.9)
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
    elif cost not in ("macs", "params"):  # a benchmark table's measurement
        name = COST_NAMES.get(cost, cost)
        ax.set_xlabel(f"{name[0].upper()}{name[1:]}, measured ({unit}, log scale)")
    else:
        ax.set_xlabel(f"MACs{at} ({unit}, log scale)" if cost == "macs" else f"Parameters ({unit}, log scale)")
    note = accuracy_note(df)
    ax.set_ylabel(_METRIC_LABEL[metric] + (f"\n{note}" if note else ""))
    ax.set_title(title)


def _study(df: pd.DataFrame) -> str:
    return str(df.attrs.get("study_name") or "study")


def plot_accuracy_vs_cost(df: pd.DataFrame, cost: str = "macs", metric: str = "val_acc", label_top: int = 5,
                          title: str | None = None, size: tuple[float, float] = SINGLE_COLUMN_LEGEND) -> Figure:
    """All trials on accuracy vs log cost, the search's Pareto front as a step line, references starred,
    and the ``label_top`` most accurate front archs labelled with their short names (``#<trial>``)."""
    with paper_style():
        fig, ax = new_figure(size)
        div, unit = _cost_unit(cost, df[cost].dropna())
        bars = _Bars(ax, df, metric)
        ok = eligible(df, cost, metric)
        feasible, infeasible = ok[ok["feasible"]], ok[~ok["feasible"]]
        bars(feasible, cost, div, PALETTE["search"], 1.5)
        ax.scatter(feasible[cost] / div, _y(feasible, metric), s=12, color=PALETTE["search"], alpha=0.75,
                   linewidth=0, zorder=2, label=f"search trials ({len(feasible)})")
        if not infeasible.empty:
            bars(infeasible, cost, div, PALETTE["infeasible"], 1.5)
            ax.scatter(infeasible[cost] / div, _y(infeasible, metric), s=12, color=PALETTE["infeasible"],
                       linewidth=0, zorder=2, label="over budget (infeasible)")
        _draw_others(ax, df, cost, metric, div, bars)
        _finish(ax, df, cost, metric, div, unit, title or f"{_study(df)}: accuracy vs {COST_NAMES[cost]}")
        front = pareto_front(df, cost, metric)
        _draw_front(ax, front, cost, metric, div, PALETTE["front"], f"Pareto front ({len(front)})",
                    ax.get_xlim()[1], bars)
        budget = _budget(df, cost)
        if budget:
            ax.axvline(budget / div, ls=":", lw=1.0, color="#555555", zorder=1, label="budget")
        texts = _draw_references(ax, df, cost, metric, div, bars)
        for _, r in front.sort_values("front_rank").head(label_top).iterrows():
            texts.append(ax.annotate(str(r["name"]), (r[cost] / div, _y(r.to_frame().T, metric)[0]),
                                     xytext=(-4, 5), textcoords="offset points", ha="right", fontsize=6,
                                     path_effects=_HALO, bbox=_LABEL_BOX, color="#333333", zorder=7))
        _clip_y(ax, df, cost, metric)
        if metric == "val_acc":  # after the y range: the curve is drawn over the range the data needs
            _draw_iso_reward(ax, df, div, cost)
        legend_below(ax)
        spread_labels(ax, texts)
    return fig


def _budget(df: pd.DataFrame, cost: str) -> float | None:
    """The hard MAC/param/latency budget of a budget/multi study (``[objective].max_macs`` etc.), if any."""
    objective = (df.attrs.get("config") or {}).get("objective")
    if not isinstance(objective, dict):
        return None
    value = objective.get(_BUDGET_KEY.get(cost, "")) or 0
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
    ylim = ax.get_ylim()
    ax.plot(m / div, acc * 100.0, ls="--", lw=0.8, color="#6A3D9A", zorder=1, label=f"iso-reward {best:.3f}")
    ax.set_ylim(ylim)
    if lo < obj.target / div < hi:
        ax.axvline(obj.target / div, ls=":", lw=0.8, color="#6A3D9A", zorder=1,
                   label="target latency T" if cost == "latency_ms" else "target MACs T")
    ax.set_xlim(lo, hi)


def _clip_y(ax: Any, df: pd.DataFrame, cost: str, metric: str) -> None:
    """Y range from every point drawn (complete and pruned trials with a cost) and its error bar, with a
    margin: no bar is cut at the plot's edge, and failed trials' crosses keep their room at the bottom."""
    rows = df[df[metric].notna() & df[cost].notna() & df["state"].isin(["COMPLETE", "PRUNED"])]
    ys = _y(rows, metric)
    if not ys.size:
        return
    lo, hi = float(np.nanmin(ys)), float(np.nanmax(ys))
    err = _yerr(rows, metric)
    if err is not None:
        lo, hi = min(lo, float(np.nanmin(ys - err[0]))), max(hi, float(np.nanmax(ys + err[1])))
    pad_ylim(ax, lo, hi, bottom=0.14, top=0.06)


def _fmt_choice(v: Any) -> str:
    """Choices come back as floats when some trial lacks the param (NaN column): show 3, not 3.0."""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def plot_by_choice(df: pd.DataFrame, choice: str, cost: str = "macs", metric: str = "val_acc",
                   title: str | None = None, size: tuple[float, float] = SINGLE_COLUMN_LEGEND) -> Figure:
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
        bars = _Bars(ax, df, metric)
        _finish(ax, df, cost, metric, div, unit, title or f"{_study(df)}: accuracy vs {COST_NAMES[cost]} by {choice}")
        _draw_front(ax, front, cost, metric, div, "#999999", "Pareto front", ax.get_xlim()[1], bars)
        for v in values:
            sub = ok[ok[choice] == v]
            bars(sub, cost, div, colors[str(v)], 2.5)
            ax.scatter(sub[cost] / div, _y(sub, metric), s=14, color=colors[str(v)], alpha=0.85, linewidth=0,
                       zorder=3, label=f"{_fmt_choice(v)} ({len(sub)})")
        texts = _draw_references(ax, df, cost, metric, div, bars)
        _clip_y(ax, eligible(df, cost, metric, include_reference=True), cost, metric)
        legend_below(ax, title=choice)
        spread_labels(ax, texts)
    return fig


def plot_fronts(frames: Sequence[pd.DataFrame], labels: Sequence[str] | None = None, cost: str = "macs",
                metric: str = "val_acc", title: str | None = None,
                size: tuple[float, float] = SINGLE_COLUMN_LEGEND) -> Figure:
    """The Pareto fronts of several studies overlaid (e.g. TPE vs NSGA-II vs random), references starred."""
    import pandas as pd
    import seaborn as sns

    labels = list(labels or [_study(f) for f in frames])
    both = pd.concat(list(frames), ignore_index=True)
    with paper_style():
        fig, ax = new_figure(size)
        div, unit = _cost_unit(cost, both[cost].dropna())
        _finish(ax, both, cost, metric, div, unit, title or "Pareto fronts: " + " vs ".join(labels))
        bars = _Bars(ax, both, metric)
        for f, label, color in zip(frames, labels, sns.color_palette(STUDY_PALETTE, len(frames))):
            ok = eligible(f, cost, metric)
            bars(ok, cost, div, color, 0.5)
            ax.scatter(ok[cost] / div, _y(ok, metric), s=6, color=color, alpha=0.3, linewidth=0, zorder=1)
            _draw_front(ax, pareto_front(f, cost, metric), cost, metric, div, color, label, ax.get_xlim()[1], bars)
        refs = both.drop_duplicates(subset=["arch", "reference"]) if "arch" in both else both
        texts = _draw_references(ax, refs, cost, metric, div, bars)
        _clip_y(ax, eligible(both, cost, metric, include_reference=True), cost, metric)
        legend_below(ax)
        spread_labels(ax, texts)
    return fig

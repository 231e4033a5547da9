"""One look for every figure: paper single-column size, one palette, MAC/param units, saving PNG + SVG.

Figures are plain ``matplotlib.figure.Figure`` objects (never pyplot), so plotting works the same under the
Agg backend in a CLI, in a test, or inline in a notebook, and no global figure state leaks between calls.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from nas_harness._config import write_output

SINGLE_COLUMN = (3.5, 2.6)  # inches; a one-column figure in a two-column paper
SINGLE_COLUMN_LEGEND = (3.5, 3.3)  # the same with its legend under the axes
WIDE = (7.0, 2.8)
PALETTE = {
    "search": "#4C72B0",  # completed, full-budget search trials
    "front": "#DD8452",  # the Pareto front
    "reference": "#C44E52",  # hand-designed reference archs (B0 and variants)
    "stopped": "#8C8C8C",  # pruned / stopped early: accuracy not comparable
    "failed": "#222222",
    "infeasible": "#A6BDDB",
}
STUDY_PALETTE = "colorblind"  # several studies / categorical choices
_RC = {
    "font.size": 7, "axes.titlesize": 7.5, "axes.labelsize": 7, "xtick.labelsize": 6.5, "ytick.labelsize": 6.5,
    "legend.fontsize": 6, "legend.title_fontsize": 6.5, "lines.linewidth": 1.2, "axes.linewidth": 0.6,
    "grid.linewidth": 0.4, "svg.fonttype": "none", "savefig.dpi": 300,
}


@contextlib.contextmanager
def paper_style() -> Iterator[None]:
    """Seaborn whitegrid + small fonts, only for the duration of one figure."""
    import matplotlib as mpl
    import seaborn as sns

    with mpl.rc_context(), sns.axes_style("whitegrid"), sns.plotting_context("paper", rc=_RC):
        yield


def new_figure(size: tuple[float, float] = SINGLE_COLUMN, ncols: int = 1) -> tuple[Any, Any]:
    """A pyplot-free Figure with an Agg canvas (needed to measure text for label placement)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols)
    return fig, axes


def cost_unit(cost: str, values: Sequence[float]) -> tuple[float, str]:
    """Divisor and axis label for MACs/params so tick numbers stay short: ``(1e6, "MMACs")`` etc."""
    top = max((float(v) for v in values if v == v), default=0.0)
    if cost in ("macs", "macs_thop"):
        steps = [(1e9, "GMACs"), (1e6, "MMACs"), (1e3, "kMACs")]
    else:
        steps = [(1e9, "billions"), (1e6, "millions"), (1e3, "thousands")]
    for div, label in steps:
        if top >= div:
            return div, label
    return 1.0, "MACs" if cost in ("macs", "macs_thop") else "count"


def log_cost_axis(ax: Any, lo: float, hi: float) -> None:
    """Log x axis whose tick labels are plain numbers, at least four of them on any range: 1-2-5 per decade
    on wide ranges, and 'nice' linear steps (1, 2, 2.5 or 5 x 10^k) inside a short range, where a log locator
    would label only one or two values."""
    import numpy as np
    from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, MaxNLocator, NullFormatter

    ax.set_xscale("log")
    pad = (hi / lo) ** 0.06 if hi > lo > 0 else 1.3
    left, right = lo / pad, hi * pad
    ax.set_xlim(left, right)
    ratio = right / left
    if ratio > 1000:
        ticks = LogLocator(base=10, subs=(1.0,)).tick_values(left, right)
    elif ratio > 20:
        ticks = LogLocator(base=10, subs=(1.0, 2.0, 5.0)).tick_values(left, right)
    else:
        ticks = []
        for n in (6, 8, 10, 14):  # the fewest linear steps that give >= 4 labels inside the range
            ticks = MaxNLocator(nbins=n, steps=[1, 2, 2.5, 5, 10]).tick_values(left, right)
            if np.sum((ticks >= left) & (ticks <= right) & (ticks > 0)) >= 4:
                break
    ticks = [t for t in ticks if t > 0]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def visible_ticks(ax: Any) -> list[str]:
    """The labelled major x ticks inside the axis limits (what a reader sees), as drawn text."""
    lo, hi = sorted(ax.get_xlim())
    fmt = ax.xaxis.get_major_formatter()
    return [fmt(t, i) for i, t in enumerate(ax.get_xticks()) if lo <= t <= hi and fmt(t, i)]


def pad_ylim(ax: Any, lo: float, hi: float, bottom: float = 0.06, top: float = 0.06) -> None:
    """Y limits from ``lo`` to ``hi`` (whiskers included) with a margin, so no bar is cut at the plot edge."""
    span = max(hi - lo, 1e-3)
    ax.set_ylim(lo - bottom * span, hi + top * span)


def legend_below(ax: Any, ncol: int = 2, **kw: Any) -> Any:
    """The axes' legend as a figure legend under the plot (below the x label), outside the data area, so it
    never hides a point or a label; the constrained layout makes room for it.  None when nothing has a label."""
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return None
    return ax.figure.legend(handles, labels, loc="outside lower center", ncol=ncol, frameon=False,
                            handletextpad=0.4, columnspacing=1.0, **kw)


def figure_legend(fig: Any) -> Any:
    """The figure's legend (:func:`legend_below`), or None."""
    return fig.legends[0] if fig.legends else None


def save(fig: Any, out_dir: Path, stem: str, formats: Sequence[str] = ("png", "svg")) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = out_dir / f"{stem}.{fmt}"
        with write_output(path, "wb") as f:
            fig.savefig(f, format=fmt, bbox_inches="tight", dpi=300)  # savefig happens outside paper_style()
        paths.append(path)
    return paths


def keep_inside(ax: Any, texts: list[Any]) -> None:
    """Flip an annotation to the other side of its point when it would stick out of the axes."""
    renderer = ax.figure.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    for t in texts:
        box = t.get_window_extent(renderer)
        x, y = t.get_position()
        if box.x0 < frame.x0 and t.get_ha() == "right":
            t.set_ha("left")
            t.set_position((abs(x), y))
        elif box.x1 > frame.x1 and t.get_ha() == "left":
            t.set_ha("right")
            t.set_position((-abs(x), y))


def spread_labels(ax: Any, texts: list[Any], pad_px: float = 1.5, iterations: int = 60) -> None:
    """Nudge annotation labels vertically until their boxes stop overlapping each other and the markers.

    A deliberately small repel: a handful of labels on a front, not a general layout engine.
    """
    keep_inside(ax, texts)
    if len(texts) < 2:
        return
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    for _ in range(iterations):
        moved = False
        boxes = [t.get_window_extent(renderer).expanded(1.0, 1.0) for t in texts]
        for i in range(len(texts)):
            for j in range(i + 1, len(texts)):
                a, b = boxes[i], boxes[j]
                if a.x1 + pad_px < b.x0 or b.x1 + pad_px < a.x0 or a.y1 + pad_px < b.y0 or b.y1 + pad_px < a.y0:
                    continue
                overlap = min(a.y1, b.y1) - max(a.y0, b.y0) + pad_px
                lower, upper = (i, j) if a.y0 <= b.y0 else (j, i)
                for k, sign in ((lower, -1), (upper, 1)):
                    x, y = texts[k].get_position()  # offset points for annotations
                    texts[k].set_position((x, y + sign * overlap * 72 / fig.dpi / 2 + sign * 0.5))
                moved = True
                boxes = [t.get_window_extent(renderer) for t in texts]
        if not moved:
            return


def legend(ax: Any, **kw: Any) -> None:
    """``ax.legend(**kw)`` when something on the axes has a label (an empty study has none: no warning then)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kw)

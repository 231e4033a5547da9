"""Search progress: hypervolume (or best reward / accuracy) after each trial, for one or several studies.

Several studies share one hypervolume reference point (computed over all of them) so their curves are
comparable; the hypervolume of the reference archs alone is drawn as a dashed line, which is the bar the
search has to clear.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from nas_harness.errors import ConfigError
from nas_harness.plots._style import SINGLE_COLUMN, STUDY_PALETTE, legend, new_figure, paper_style
from nas_harness.results import (
    ReferencePoint,
    best_so_far,
    default_reference_point,
    eligible,
    hypervolume,
    hypervolume_history,
)

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.figure import Figure

PROGRESS_METRICS = ("hypervolume", "best_reward", "best_val_acc")


def plot_progress(frames: Sequence[pd.DataFrame], labels: Sequence[str] | None = None,
                  metric: str = "hypervolume", reference: ReferencePoint | None = None, cost: str = "macs",
                  title: str | None = None, size: tuple[float, float] = SINGLE_COLUMN) -> Figure:
    """One line per study: ``metric`` after each search trial (reference trials are not counted as steps)."""
    import seaborn as sns

    if metric not in PROGRESS_METRICS:
        raise ConfigError(f"metric: '{metric}' is not allowed (allowed: {', '.join(PROGRESS_METRICS)})")
    frames = list(frames)
    labels = list(labels or [str(f.attrs.get("study_name") or f"study {i}") for i, f in enumerate(frames)])
    if metric == "hypervolume":
        reference = reference or default_reference_point(frames, cost)
    with paper_style():
        fig, ax = new_figure(size)
        ref_levels: dict[float, tuple[str, object]] = {}  # level -> (study or reference name, colour)
        for f, label, color in zip(frames, labels, sns.color_palette(STUDY_PALETTE, len(frames))):
            if metric == "hypervolume":
                hist = hypervolume_history(f, reference, cost)
                y = hist["hypervolume"]
                refs = f[f["is_reference"]]
                if not eligible(refs, cost, include_reference=True).empty:
                    level = round(hypervolume(refs, reference, cost, include_reference=True), 12)
                    ref_levels.setdefault(level, (label, color))
            else:
                key = metric.removeprefix("best_")
                scale = 100.0 if metric == "best_val_acc" else 1.0
                hist = best_so_far(f, key)
                y = hist[key] * scale
                refs = f[f["is_reference"] & (f["state"] == "COMPLETE") & f["full_budget"] & f[key].notna()]
                if not refs.empty:
                    top = refs.loc[refs[key].idxmax()]
                    ref_levels.setdefault(round(float(top[key]) * scale, 12), (str(top["name"]), color))
            ax.plot(hist["step"], y, drawstyle="steps-post", color=color, label=label)
        several = len(frames) > 1  # then each study's reference bar takes the study's colour
        for level, (label, color) in ref_levels.items():
            if metric == "hypervolume":
                text = "reference archs" + (f" ({label})" if several else "")
            else:
                text = f"best reference ({label})"
            ax.axhline(level, ls="--", lw=0.9, color=color if several else "#C44E52", label=text)
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # trial counts, never 2.5
        ax.set_xlabel("Search trial")
        ax.set_ylabel({"hypervolume": "Hypervolume (fraction of box)", "best_reward": "Best reward",
                       "best_val_acc": "Best validation accuracy (%)"}[metric])
        name = " vs ".join(labels) if len(labels) > 1 else labels[0]
        ax.set_title(title or f"{name}: {metric.replace('_', ' ')} over trials")
        if metric == "hypervolume":
            unit, div = ("MMACs", 1e6) if reference.cost >= 1e6 else ("MACs", 1.0)
            ax.text(0.99, 0.03, f"ref. point: {reference.cost / div:.3g} {unit}, acc {reference.acc:.0%}",
                    transform=ax.transAxes, ha="right", va="bottom", fontsize=5.5, color="#555555")
        legend(ax, loc="center right" if metric == "hypervolume" else "lower right", frameon=True,
                  framealpha=0.85)
    return fig

"""Search progress: hypervolume (or best reward / accuracy) after each trial, for one or several studies.

The x axis is the Optuna trial number (``#N``, the numbers used in every table, label and summary line;
reference trials are not steps of the search, so their numbers are skipped).  Several studies share one
hypervolume reference point (computed over all of them, in the studies' own cost) so their curves are
comparable; the hypervolume of the reference archs alone is drawn as a dashed line, which is the bar the
search has to clear.

The best-so-far curves carry the uncertainty of the trial that holds the best: a band with the Wilson 95 %
interval of its accuracy (for the reward, the same interval times the trial's cost factor (COST/T)^w, which
the reward is linear in).  Their y range is chosen to cover every band and the reference bar, never just the
point estimates, so a step smaller than the noise looks small: the figure says so in a note.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from nas_harness.errors import ConfigError
from nas_harness.plots._style import (
    SINGLE_COLUMN_LEGEND,
    STUDY_PALETTE,
    legend_below,
    new_figure,
    pad_ylim,
    paper_style,
)
from nas_harness.results import (
    ReferencePoint,
    best_so_far,
    cost_text,
    default_reference_point,
    eligible,
    hypervolume,
    hypervolume_history,
)

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.figure import Figure

PROGRESS_METRICS = ("hypervolume", "best_reward", "best_val_acc")
BAND_NOTE = "band: 95% Wilson interval of the best trial; y range covers every band"


def best_band(df: pd.DataFrame, hist: pd.DataFrame, key: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Lower and upper edge of the best-so-far band (units of ``key``, per row of ``hist``): the Wilson 95 %
    interval of the validation accuracy of the trial holding the best, scaled for the reward by that trial's
    reward / val_acc.  None when no trial recorded its split size."""
    if "val_ci_low" not in df or not np.isfinite(df["val_ci_low"].to_numpy(float)).any():
        return None
    by_number = df.set_index("number")
    lo, hi = [], []
    for number in hist["best_number"]:
        if number != number or int(number) not in by_number.index:
            lo.append(np.nan)
            hi.append(np.nan)
            continue
        row = by_number.loc[int(number)]
        scale = float(row["reward"]) / float(row["val_acc"]) if key == "reward" and row["val_acc"] else 1.0
        lo.append(float(row["val_ci_low"]) * scale)
        hi.append(float(row["val_ci_high"]) * scale)
    return np.asarray(lo, float), np.asarray(hi, float)


def plot_progress(frames: Sequence[pd.DataFrame], labels: Sequence[str] | None = None,
                  metric: str = "hypervolume", reference: ReferencePoint | None = None, cost: str = "macs",
                  title: str | None = None, size: tuple[float, float] = SINGLE_COLUMN_LEGEND) -> Figure:
    """One line per study: ``metric`` after each search trial, over trial numbers (reference trials are not
    counted); ``cost`` is the hypervolume's cost column and ``reference`` is in its units."""
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
        span: list[float] = []  # every value the y range must show (bands and bars included)
        banded = False
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
                band = best_band(f, hist, key)
                if band is not None:
                    lo, hi = band[0] * scale, band[1] * scale
                    ax.fill_between(hist["number"], lo, hi, step="post", color=color, alpha=0.18, linewidth=0,
                                    label=None if banded else "95% Wilson interval of the best")
                    span += [v for v in (*lo, *hi) if v == v]
                    banded = True
                refs = f[f["is_reference"] & (f["state"] == "COMPLETE") & f["full_budget"] & f[key].notna()]
                if not refs.empty:
                    top = refs.loc[refs[key].idxmax()]
                    ref_levels.setdefault(round(float(top[key]) * scale, 12), (str(top["name"]), color))
            span += [v for v in y if v == v]
            ax.plot(hist["number"], y, drawstyle="steps-post", color=color, label=label)
        several = len(frames) > 1  # then each study's reference bar takes the study's colour
        for level, (label, color) in ref_levels.items():
            if metric == "hypervolume":
                text = "reference archs" + (f" ({label})" if several else "")
            else:
                text = f"best reference ({label})"
            ax.axhline(level, ls="--", lw=0.9, color=color if several else "#C44E52", label=text)
            span.append(level)
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # trial numbers, never 2.5
        ax.set_xlabel("Trial # (Optuna trial number; references not counted)")
        ax.set_ylabel({"hypervolume": "Hypervolume (fraction of box)", "best_reward": "Best reward",
                       "best_val_acc": "Best validation accuracy (%)"}[metric])
        name = " vs ".join(labels) if len(labels) > 1 else labels[0]
        ax.set_title(title or f"{name}: {metric.replace('_', ' ')} over trials")
        if metric == "hypervolume":
            ax.text(0.99, 0.03, f"ref. point: {cost_text(reference.cost, cost)}, acc {reference.acc:.0%}",
                    transform=ax.transAxes, ha="right", va="bottom", fontsize=5.5, color="#555555")
        elif span:
            pad_ylim(ax, min(span), max(span), bottom=0.08, top=0.08)
            if banded:
                ax.text(0.01, 0.02, BAND_NOTE, transform=ax.transAxes, ha="left", va="bottom", fontsize=5,
                        color="#555555")
        legend_below(ax)
    return fig

"""Figures of re-evaluations: ``confirm`` (means over seeds with intervals, paired differences, the front of
the means) and ``fidelity`` (proxy vs high-fidelity accuracy, and the two rankings linked).

They take the plain tables the commands write (``confirm.csv`` / ``confirm_pairs.csv``, the per-arch rows of
``fidelity.json``) as pandas DataFrames, so a figure can be redrawn from the files alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from nas_harness.objectives import MS_COSTS
from nas_harness.plots._style import (
    PALETTE,
    STUDY_PALETTE,
    WIDE,
    keep_inside,
    legend,
    log_cost_axis,
    new_figure,
    paper_style,
)
from nas_harness.results import COST_NAMES

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = ["plot_confirm", "plot_fidelity"]


def _err(mid: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    err = np.vstack([mid - lo, hi - mid])
    return np.where(np.isfinite(err), np.clip(err, 0, None), 0.0)


_COST_AXIS = {"macs": (1e6, "MACs (M, log scale)"), "params": (1e6, "Parameters (M, log scale)"),
              "latency_ms": (1.0, "Latency (ms, log scale)")}


def plot_confirm(arch: pd.DataFrame, pairs: pd.DataFrame, title: str = "confirm", cost: str = "macs") -> Figure:
    """Left: mean validation accuracy over the seeds ± its 95 % interval vs the study's cost ``cost`` (hollow:
    the single search run each arch was selected on), the Pareto front of the means as a step line, references
    starred.  Right: paired differences vs each reference (or vs the best mean) with their 95 % intervals."""
    import seaborn as sns

    ms = cost in MS_COSTS
    div, xlabel = _COST_AXIS.get(cost) or (1.0 if ms else 1e6, f"{COST_NAMES.get(cost, cost)} ({'ms' if ms else 'M'}, "
                                                               "log scale)")
    with paper_style():
        fig, (ax, bx) = new_figure((WIDE[0], 3.0), ncols=2)
        ok = arch[arch["n_seeds"] > 0].copy()
        x = ok[cost].to_numpy(float) / div
        y = ok["val_mean"].to_numpy(float) * 100
        err = _err(y, ok["val_ci_low"].to_numpy(float) * 100, ok["val_ci_high"].to_numpy(float) * 100)
        ref = (ok["kind"] == "reference").to_numpy()
        sx = ok["search_val_acc"].to_numpy(float) * 100
        for xi, yi, si in zip(x, y, sx):
            if np.isfinite(si):
                ax.plot([xi, xi], [si, yi], ls=":", lw=0.6, color="#999999", zorder=1)
        ax.scatter(x, sx, s=14, facecolor="none", edgecolor="#777777", linewidth=0.7, zorder=2,
                   label="search run (selected on)")
        ax.errorbar(x[~ref], y[~ref], yerr=err[:, ~ref], fmt="o", ms=3.5, color=PALETTE["search"], elinewidth=0.8,
                    capsize=2, zorder=4, label="mean ± 95% t CI (seeds)")
        if ref.any():
            ax.errorbar(x[ref], y[ref], yerr=err[:, ref], fmt="*", ms=7, color=PALETTE["reference"],
                        elinewidth=0.8, capsize=2, zorder=5, label="reference")
        front = ok[ok["front_of_means"].astype(bool)].sort_values(cost)
        if not front.empty:
            fx = front[cost].to_numpy(float) / div
            fy = front["val_mean"].to_numpy(float) * 100
            ax.step(np.append(fx, fx[-1] * 1.5), np.append(fy, fy[-1]), where="post", color=PALETTE["front"],
                    lw=1.0, zorder=3, label="front of the means")
        if len(x):
            finite = x[np.isfinite(x)]
            if finite.size:
                log_cost_axis(ax, float(finite.min()), float(finite.max()))
        texts = [ax.annotate(str(lbl).split(" = ")[0], (xi, yi), xytext=(4, 3), textcoords="offset points",
                             fontsize=5.5, color="#333333", zorder=7)
                 for lbl, xi, yi in zip(ok["label"], x, y) if np.isfinite(xi) and np.isfinite(yi)]
        ax.set_xlabel(xlabel)
        ax.set_ylabel("Validation accuracy (%)")
        ax.set_title(title)
        legend(ax, loc="best", frameon=True, framealpha=0.85)
        keep_inside(ax, texts)

        if not pairs.empty and pairs["pairs"].max() > 0:
            p = pairs[pairs["pairs"] > 0]
            refs = list(dict.fromkeys(p["reference"]))
            colors = dict(zip(refs, sns.color_palette(STUDY_PALETTE, len(refs))))
            labels = list(dict.fromkeys(p["label"]))
            ypos = {lbl: i for i, lbl in enumerate(labels)}
            step = 0.7 / max(1, len(refs))
            for j, r in enumerate(refs):
                q = p[p["reference"] == r]
                yy = np.array([ypos[lbl] for lbl in q["label"]]) + (j - (len(refs) - 1) / 2) * step
                m = q["delta_mean"].to_numpy(float) * 100
                e = _err(m, q["delta_ci_low"].to_numpy(float) * 100, q["delta_ci_high"].to_numpy(float) * 100)
                bx.errorbar(m, yy, xerr=e, fmt="o", ms=3, color=colors[r], elinewidth=0.8, capsize=2,
                            label=f"vs {r}")
            bx.set_yticks(range(len(labels)))
            bx.set_yticklabels([str(lbl).split(" = ")[0] for lbl in labels])
            bx.set_xlabel("Paired Δ validation accuracy (pp, 95% paired t CI)")
            bx.set_title("Paired differences vs the references")
        else:
            q = arch[arch["vs_best_mean"].notna()]
            m = q["vs_best_mean"].to_numpy(float) * 100
            e = _err(m, q["vs_best_ci_low"].to_numpy(float) * 100, q["vs_best_ci_high"].to_numpy(float) * 100)
            bx.errorbar(m, np.arange(len(q)), xerr=e, fmt="o", ms=3, color=PALETTE["search"], elinewidth=0.8,
                        capsize=2, label="vs the best mean")
            bx.set_yticks(range(len(q)))
            bx.set_yticklabels([str(lbl).split(" = ")[0] for lbl in q["label"]])
            bx.set_xlabel("Paired Δ vs the best mean (pp, 95% paired t CI)")
            bx.set_title("Paired differences vs the best")
        bx.axvline(0, color="#555555", lw=0.8, ls="--", zorder=0)
        bx.invert_yaxis()
        legend(bx, loc="best", frameon=True, framealpha=0.85)
    return fig


def plot_fidelity(archs: pd.DataFrame, summary: dict[str, Any], title: str = "fidelity") -> Figure:
    """Left: proxy (search) accuracy vs high-fidelity accuracy, each with its 95 % interval, Kendall tau in the
    title.  Right: the two rankings linked (rank by the proxy on the left, by high fidelity on the right)."""
    with paper_style():
        fig, (ax, bx) = new_figure((WIDE[0], 3.0), ncols=2)
        px = archs["proxy_val_acc"].to_numpy(float) * 100
        hy = archs["hifi_val_acc"].to_numpy(float) * 100
        xerr = _err(px, archs["proxy_ci_low"].to_numpy(float) * 100, archs["proxy_ci_high"].to_numpy(float) * 100)
        yerr = _err(hy, archs["hifi_ci_low"].to_numpy(float) * 100, archs["hifi_ci_high"].to_numpy(float) * 100)
        top = archs["proxy_top_k"].astype(bool).to_numpy() if "proxy_top_k" in archs else np.zeros(len(px), bool)
        ax.errorbar(px[top], hy[top], xerr=xerr[:, top], yerr=yerr[:, top], fmt="o", ms=3.5,
                    color=PALETTE["front"], elinewidth=0.7, capsize=1.5, label="proxy's top-k")
        ax.errorbar(px[~top], hy[~top], xerr=xerr[:, ~top], yerr=yerr[:, ~top], fmt="o", ms=3.5,
                    color=PALETTE["search"], elinewidth=0.7, capsize=1.5, label="random others")
        texts = [ax.annotate(str(lbl), (x, y), xytext=(4, 3), textcoords="offset points", fontsize=5.5,
                             color="#333333") for lbl, x, y in zip(archs["label"], px, hy)
                 if np.isfinite(x) and np.isfinite(y)]
        tau, ci = summary.get("kendall_tau"), summary.get("kendall_tau_ci") or [None, None]
        tau_txt = "n/a" if tau is None else (f"{tau:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if None not in ci else ""))
        ax.set_xlabel("Proxy (search) validation accuracy (%, 95% Wilson)")
        ax.set_ylabel("High-fidelity val. accuracy (%, 95% t over runs or Wilson)")
        ax.set_title(f"{title}: Kendall tau {tau_txt}" + (" (bootstrap 95%)" if None not in ci else ""))
        legend(ax, loc="best", frameon=True, framealpha=0.85)
        keep_inside(ax, texts)

        n = len(archs)
        pr = archs["proxy_rank"].to_numpy(float)
        hr = archs["hifi_rank"].to_numpy(float)
        for lbl, a, b, t in zip(archs["label"], pr, hr, top):
            if not (np.isfinite(a) and np.isfinite(b)):
                continue
            color = PALETTE["front"] if t else PALETTE["search"]
            bx.plot([0, 1], [a, b], color=color, lw=1.0, marker="o", ms=3)
            bx.annotate(str(lbl), (0, a), xytext=(-4, 0), textcoords="offset points", ha="right", va="center",
                        fontsize=5.5)
            bx.annotate(str(lbl), (1, b), xytext=(4, 0), textcoords="offset points", ha="left", va="center",
                        fontsize=5.5)
        bx.set_xlim(-0.45, 1.45)
        bx.set_ylim(n + 0.5, 0.5)
        bx.set_xticks([0, 1])
        bx.set_xticklabels(["rank by proxy", "rank at high fidelity"])
        bx.set_yticks(range(1, n + 1))
        bx.set_ylabel("rank (1 = most accurate)")
        bx.set_title("Rankings linked")
        bx.grid(axis="x", visible=False)
    return fig

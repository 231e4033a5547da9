"""Ablation report: per-run and per-variant CSV, a Markdown table (also printed), and a seaborn figure.

Everything is derived from the stored run records, so ``nas-harness ablate FILE --report-only`` can redraw
it at any time (e.g. for a partially finished ablation).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nas_harness._config import write_output, write_text
from nas_harness.report.document import Block, Bullets, Heading, Para, Table, to_html, to_markdown, write_csv
from nas_harness.results.stats import interval_text, paired_words

from .config import AblationConfig
from .runner import RunRecord
from .stats import BudgetStability, VariantStats, budget_stability, variant_table
from .variants import describe

__all__ = ["ReportPaths", "ablation_table", "markdown_table", "plot_ablation", "stability_blocks", "stability_text",
           "summarize_runs", "write_report"]


@dataclass(frozen=True)
class ReportPaths:
    runs_csv: Path
    summary_csv: Path
    markdown: Path
    figures: tuple[Path, ...]


def summarize_runs(cfg: AblationConfig, records: Sequence[RunRecord]) -> list[VariantStats]:
    """One :class:`VariantStats` per variant of ``cfg`` (Δ vs ``cfg.baseline``)."""
    return variant_table([r.to_row() for r in records], cfg.variants, {v: str(a) for v, a in cfg.archs.items()},
                         baseline=cfg.baseline)


def _pct(x: float, digits: int = 2) -> str:
    return "–" if x is None or math.isnan(x) else f"{100 * x:.{digits}f}"


def _signed_pct(x: float) -> str:
    return "–" if x is None or math.isnan(x) else f"{100 * x:+.2f}"


def _count(n: int | None, unit: float, suffix: str, digits: int) -> str:
    return "–" if n is None else f"{n / unit:.{digits}f}{suffix}"


def _signed_count(n: int | None, base: int | None, unit: float, suffix: str, digits: int) -> str:
    if n is None:
        return "–"
    rel = f" ({100 * n / base:+.1f}%)" if base else ""
    return f"{n / unit:+.{digits}f}{suffix}{rel}"


def markdown_table(rows: Sequence[VariantStats], baseline: str | None) -> str:
    """The ablation table in GitHub Markdown (accuracies in %, Δ in percentage points)."""
    return to_markdown([ablation_table(rows, baseline)]).rstrip("\n")


def ablation_table(rows: Sequence[VariantStats], baseline: str | None) -> Table:
    """The ablation table as a document :class:`~nas_harness.report.document.Table` (every column but the
    variant's name right-aligned)."""
    base = next((r for r in rows if r.variant == baseline), None)
    head = ["variant", "runs", "test acc % (mean ± std)", "95% CI", f"Δ test vs {baseline} (paired) [95% CI]",
            "p", "val acc %", "params", "Δ params", "MACs", "Δ MACs", "train s/run"]
    body: list[list[str]] = []
    for r in rows:
        d = r.delta_test
        if d is None or r.variant == baseline:
            delta, p = "–", "–"
        else:
            ci = f" [{_signed_pct(d.ci_low)}, {_signed_pct(d.ci_high)}]" if d.n >= 2 and not d.constant else ""
            delta = f"{_signed_pct(d.mean)}{ci} (n={d.n}): {paired_words(d) or 'undecided'}"
            p = "–" if math.isnan(d.p_value) else ("<0.001" if d.p_value < 0.001 else f"{d.p_value:.3f}")
        runs = f"{r.n_ok}" + (f" (+{r.n_failed} failed)" if r.n_failed else "")
        cells = [
            r.variant,
            runs,
            f"{_pct(r.test.mean)} ± {_pct(r.test.std)}",
            interval_text(r.test.ci_low, r.test.ci_high, r.test.n, 100.0, ".2f") if r.test.n else "–",
            delta,
            p,
            _pct(r.val.mean),
            _count(r.params, 1e6, "M", 3),
            "–" if r.variant == baseline else _signed_count(r.d_params, base.params if base else None, 1e6, "M", 3),
            _count(r.macs, 1e6, "M", 1),
            "–" if r.variant == baseline else _signed_count(r.d_macs, base.macs if base else None, 1e6, "M", 1),
            "–" if math.isnan(r.train_time_s) else f"{r.train_time_s:.0f}",
        ]
        body.append(cells)
    return Table(head, body, right=set(range(1, len(head))))


def _settings(cfg: AblationConfig, records: Sequence[RunRecord]) -> str:
    d, t = cfg.data, cfg.train
    budget = f"{t.epochs:g} epoch(s)" if t.epochs is not None else f"{t.steps} steps"
    devices = sorted({str(r.metrics.get("device")) for r in records if r.state == "ok" and r.metrics.get("device")})
    times = [float(r.metrics.get("wall_time_s") or 0.0) for r in records if r.state == "ok"]
    train_n = f"train_subset={d.train_subset}" if getattr(d, "train_subset", None) else "full train split"
    return (
        f"Base arch: `{cfg.base}`; data: {d.dataset} at {d.resolution} px ({train_n}, val_size={d.val_size}), "
        f"stem stride {cfg.trial.stem_stride or 'as arch'}; training: {budget}, batch {t.batch_size}, {t.optimizer} "
        f"lr {t.lr}, {t.schedule}; seeds {list(cfg.seeds)}; device {', '.join(devices) or '?'}; "
        f"total run time {sum(times) / 60:.1f} min.  Accuracies on the test set, mean over seeds with a Student-t "
        f"95% interval clipped to [0, 100] %; Δ = variant − {cfg.baseline} per seed (paired t interval), in "
        f"percentage points; the variant beats the baseline when the 95% interval of Δ is above 0, is worse when "
        f"below, and is tied within noise otherwise (a Δ that is the same on every seed has a zero-width interval "
        f"that measures no noise and is worded as such).  MACs at {cfg.trial.macs_resolution} px "
        f"with the arch's own stem (fvcore convention, 1 MAC = 1 flop)."
    )


def plot_ablation(cfg: AblationConfig, rows: Sequence[VariantStats], records: Sequence[RunRecord],
                  out_stem: Path) -> tuple[Path, ...]:
    """Accuracy per variant: per-seed points (joined across variants: the pairing), mean and 95% CI bars,
    with params/MACs under each variant name.  Written as PNG and SVG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    ok = [r for r in records if r.state == "ok" and r.metrics.get("test_acc") is not None]
    if not ok:
        return ()
    df = pd.DataFrame([{"variant": r.variant, "seed": str(r.seed), "test acc (%)": 100 * float(r.metrics["test_acc"])}
                       for r in ok])
    order = [r.variant for r in rows]
    x_of = {v: i for i, v in enumerate(order)}
    seeds = sorted({r.seed for r in ok})
    # Each seed gets a fixed small x offset so its points line up and the pairing lines end on them.
    off = {s: 0.05 * (i - (len(seeds) - 1) / 2) for i, s in enumerate(seeds)}
    df["x"] = [x_of[r.variant] + off[r.seed] for r in ok]
    sns.set_theme(style="whitegrid", context="notebook")
    fig, ax = plt.subplots(figsize=(max(5.0, 1.7 * len(order) + 1.5), 4.6))
    for _seed, g in df.groupby("seed"):
        g = g.sort_values("x")
        ax.plot(g["x"], g["test acc (%)"], color="0.75", lw=0.8, zorder=1)
    sns.scatterplot(data=df, x="x", y="test acc (%)", hue="seed", hue_order=[str(s) for s in seeds], s=45,
                    ax=ax, zorder=2, palette="deep")
    for r in rows:
        if r.test.n == 0:
            continue
        x = x_of[r.variant]
        if r.test.n >= 2:
            yerr = [[100 * (r.test.mean - r.test.ci_low)], [100 * (r.test.ci_high - r.test.mean)]]
            ax.errorbar([x + 0.22], [100 * r.test.mean], yerr=yerr, fmt="D", color="black", capsize=5, ms=6,
                        zorder=3, label="mean ± 95% CI" if x == 0 else None)
        else:
            ax.plot([x + 0.22], [100 * r.test.mean], "D", color="black", zorder=3)
    labels = []
    for r in rows:
        params = "?" if r.params is None else f"{r.params / 1e6:.2f}M params"
        macs = "?" if r.macs is None else f"{r.macs / 1e6:.0f}M MACs"
        labels.append(f"{r.variant}\n{params}\n{macs}")
    ax.set_xticks(range(len(order)))
    ax.set_xticklabels(labels, fontsize=9)
    ax.set_xlabel("")
    d = cfg.data
    budget = f"{cfg.train.epochs} ep" if cfg.train.epochs is not None else f"{cfg.train.steps} steps"
    ax.set_title(f"{cfg.name}: {d.dataset} {d.resolution}px, {budget}, {len(cfg.seeds)} seeds "
                 f"(MACs at {cfg.trial.macs_resolution}px)", fontsize=10)
    ax.legend(title="seed", fontsize=8, title_fontsize=8, loc="best")
    fig.tight_layout()
    out_stem.parent.mkdir(parents=True, exist_ok=True)
    paths = (out_stem.with_suffix(".png"), out_stem.with_suffix(".svg"))
    with write_output(paths[0], "wb") as f:
        fig.savefig(f, format="png", dpi=150)
    with write_output(paths[1], "wb") as f:
        fig.savefig(f, format="svg")
    plt.close(fig)
    return paths




def stability_blocks(cfg: AblationConfig, cfg2: AblationConfig, st: BudgetStability) -> list[Block]:
    """The "stable across budgets?" section: both budgets' ranks and Δ verdicts, Kendall tau, and the answer."""
    a, b = cfg.budget_text(), cfg2.budget_text()
    head = ["variant", f"test % at A ({a})", "rank A", "Δ A: verdict", f"test % at B ({b})", "rank B", "Δ B: verdict"]
    body = []
    for r in st.rows:
        da = "–" if r["verdict_a"] == "baseline" else f"{_signed_pct(r['delta_a'])} pp: {r['verdict_a']}"
        db = "–" if r["verdict_b"] == "baseline" else f"{_signed_pct(r['delta_b'])} pp: {r['verdict_b']}"
        body.append([r["variant"], _pct(r["test_mean_a"]), str(r["rank_a"]), da, _pct(r["test_mean_b"]),
                     str(r["rank_b"]), db])
    tau = "n/a" if math.isnan(st.tau) else f"{st.tau:.2f}"
    if st.agreed:
        answer = ("Stable: both budgets rank the variants in the same order and give every Δ vs the baseline the same "
                  "verdict.")
    else:
        parts = []
        if not st.same_order:
            parts.append("the order of the variants differs" + ("" if st.same_best else ", including the best one"))
        if st.flipped:
            parts.append("the verdict of Δ vs the baseline changes for " + ", ".join(st.flipped))
        answer = "Not stable: " + "; ".join(parts) + ". Read the conclusion as a statement about the budget."
    return [Heading(f"Stable across budgets? A = {a}, B = {b}", 3), Table(head, body, right={1, 2, 4, 5}),
            Para(f"Kendall tau of the variant means between the budgets: {tau} ({len(st.rows)} variants). " + answer)]


def stability_text(cfg: AblationConfig, cfg2: AblationConfig, st: BudgetStability) -> str:
    """:func:`stability_blocks` in Markdown."""
    return to_markdown(stability_blocks(cfg, cfg2, st)).rstrip("\n")


def _failures(records: Sequence[RunRecord], title: str) -> list[Block]:
    failed = [f"{r.variant} seed {r.seed}: {r.error}" for r in records if r.state != "ok"]
    return [Para(title), Bullets(failed)] if failed else []


def write_report(cfg: AblationConfig, records: Sequence[RunRecord], out_dir: str | Path | None = None,
                 figure: bool = True, second: tuple[AblationConfig, Sequence[RunRecord]] | None = None,
                 supernet: Sequence[RunRecord] | None = None) -> tuple[ReportPaths, str]:
    """Write runs.csv, summary.csv, summary.md (and the same document as summary.html) and the figure; return the
    paths and the Markdown text.

    ``second``: the same ablation at its ``[compare_budget]`` (config and records): its table, and whether the two
    budgets rank the variants alike, are added to the summary (and ``stability.csv``).  ``supernet``: the stored
    supernet scores of an ablation with ``[supernet]``: their table, and whether each variant's verdict agrees
    with the from-scratch one, are added (and ``supernet.csv``)."""
    out = Path(out_dir) if out_dir is not None else cfg.out_dir
    rows = summarize_runs(cfg, records)
    runs_csv, summary_csv, md_path = out / "runs.csv", out / "summary.csv", out / "summary.md"
    write_csv(runs_csv, [r.to_row() for r in records])
    write_csv(summary_csv, [r.to_row() | {"description": describe(r.variant, cfg.definitions)} for r in rows])
    blocks: list[Block] = [Heading(f"Ablation `{cfg.name}`"), Para(_settings(cfg, records)),
                           ablation_table(rows, cfg.baseline), *_failures(records, "Failed runs:")]
    if second is not None:
        cfg2, records2 = second
        rows2 = summarize_runs(cfg2, records2)
        st = budget_stability(rows, rows2, cfg.baseline)
        blocks += [Heading(f"Second budget: {cfg2.budget_text()}", 3), Para(_settings(cfg2, records2)),
                   ablation_table(rows2, cfg2.baseline), *stability_blocks(cfg, cfg2, st)]
        write_csv(out / "stability.csv", [dict(r) for r in st.rows])
        blocks += _failures(records2, "Failed runs at the second budget:")
    if cfg.supernet is not None:
        from .supernet import supernet_blocks, supernet_rows

        srows = supernet_rows(cfg, supernet or [], rows)
        blocks += supernet_blocks(cfg, srows, supernet or [])
        write_csv(out / "supernet.csv", [r.to_row() for r in srows])
    text = to_markdown(blocks)
    md_path.parent.mkdir(parents=True, exist_ok=True)
    write_text(md_path, text)
    write_text(md_path.with_suffix(".html"), to_html(blocks, f"Ablation {cfg.name}"))
    figs = plot_ablation(cfg, rows, records, out / "ablation") if figure else ()
    return ReportPaths(runs_csv, summary_csv, md_path, figs), text

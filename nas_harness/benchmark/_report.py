"""The benchmark's outputs: a figure (curves with 95 % bands), Markdown/HTML report and CSV files."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from nas_harness._config import write_output, write_text
from nas_harness.benchmark._analysis import Comparison, Curves, mean_ranks
from nas_harness.report.document import Bullets, Heading, Image, Para, Table, to_html, to_markdown
from nas_harness.results.stats import interval_text, paired_words

_LABEL = {"regret": "regret of the best-so-far accuracy (pp)", "hypervolume": "hypervolume (normalised)"}
_METHOD = {
    "regret": "Intervals: 95 % Student-t interval of the mean over seeds, clipped to the range of regret (>= 0, "
              "<= the reference); none with one seed. Differences: paired over seeds (paired t interval); a "
              "difference that is the same on every seed has a zero-width interval and is worded as such. Mean ranks "
              "have no interval.",
    "hypervolume": "Intervals: 95 % Student-t interval of the mean over seeds, clipped to the range of the "
                   "normalised hypervolume ([0, 1]); none with one seed. Differences: paired over seeds (paired t "
                   "interval); a difference that is the same on every seed has a zero-width interval and is worded "
                   "as such. Mean ranks have no interval.",
}


def plot_curves(c: Curves, title: str) -> Any:
    """Mean curve and 95 % band per strategy against the number of trials (log x)."""
    from nas_harness.plots._style import new_figure, paper_style

    with paper_style():
        fig, ax = new_figure((3.4, 2.4))
        scale = 100.0 if c.metric == "regret" else 1.0
        for s in c.strategies:
            x = np.arange(1, len(c.mean[s]) + 1)
            (line,) = ax.plot(x, scale * c.mean[s], label=s)
            ax.fill_between(x, scale * c.low[s], scale * c.high[s], color=line.get_color(), alpha=0.2, lw=0)
        ax.set_xscale("log")
        if c.metric == "regret":
            ax.set_yscale("log")
        ax.set_xlabel("trials")
        ax.set_ylabel(_LABEL[c.metric])
        ax.set_title(title)
        ax.legend(title=f"mean of {len(c.seeds)} seeds" + (", 95 % t interval" if len(c.seeds) > 1 else ""))
    return fig


def write_csv(c: Curves, comparisons: list[Comparison], out: Path) -> list[Path]:
    """``benchmark_curves.csv`` (strategy, trials, mean, ci_low, ci_high, seeds) and ``benchmark_pairs.csv``
    (``verdict``: the interval rule's word; ``in_words``: as the report words it, e.g. "identical on all 10 seeds
    (difference 0)" where the rule alone would say "tied within noise")."""
    scale = 100.0 if c.metric == "regret" else 1.0
    unit = "pp" if c.metric == "regret" else "normalised"
    p1, p2 = out / "benchmark_curves.csv", out / "benchmark_pairs.csv"
    with write_output(p1) as f:
        w = csv.writer(f)
        w.writerow(["strategy", "trials", f"{c.metric}_mean_{unit}", "ci_low", "ci_high", "seeds"])
        for s in c.strategies:
            for k in range(len(c.mean[s])):
                w.writerow([s, k + 1, f"{scale * c.mean[s][k]:.6g}", f"{scale * c.low[s][k]:.6g}",
                            f"{scale * c.high[s][k]:.6g}", len(c.seeds)])
    with write_output(p2) as f:
        w = csv.writer(f)
        w.writerow(["a", "b", "trials", f"a_minus_b_{'pp' if c.metric == 'regret' else 'hv'}", "ci_low", "ci_high",
                    "p_value", "seeds", "verdict", "in_words"])
        for cmp in comparisons:
            d = cmp.delta
            w.writerow([cmp.a, cmp.b, cmp.at, f"{scale * d.mean:.6g}", f"{scale * d.ci_low:.6g}",
                        f"{scale * d.ci_high:.6g}", f"{d.p_value:.4g}", d.n, d.verdict, paired_words(d) or d.verdict])
    return [p1, p2]


def document(cfg: Any, problem: Any, c: Curves, comparisons: list[Comparison], reference: float,
             notes: list[str], figure: str | None) -> list[Any]:
    """The report's blocks (rendered to Markdown and HTML)."""
    scale = 100.0 if c.metric == "regret" else 1.0
    unit = " pp" if c.metric == "regret" else ""
    blocks: list[Any] = [Heading(f"Benchmark {cfg.name}", 1)]
    if cfg.description:
        blocks.append(Para(cfg.description))
    what = {"table": f"the {problem.table.name} table's {len(problem.table)} archs (records only)",
            "surrogate": f"the whole space, scored by the surrogate of the {problem.table.name} table",
            "recorded": f"a table recorded from finished studies ({len(problem.table)} archs)"}[cfg.source]
    obj = "accuracy" if cfg.objective == "accuracy" else f"accuracy vs {cfg.cost} (hypervolume)"
    blocks.append(Para(f"{len(c.strategies)} strategies x {len(c.seeds)} seeds x {cfg.trials} trials on {what}; "
                       f"objective: {obj}. Regret is against {100 * reference:.2f} % "
                       f"({'the best known surrogate value' if cfg.source == 'surrogate' else 'the optimum'}). "
                       f"{_METHOD[c.metric]}"))
    if notes:
        blocks.append(Bullets(notes))
    if figure:
        blocks.append(Image(figure, f"{c.metric} vs trials"))
    budgets = cfg.compare_at
    header = ["strategy", *[f"{c.metric} at {b}" for b in budgets], *[f"mean rank at {b}" for b in budgets]]
    ranks = {b: mean_ranks(c, b) for b in budgets}
    rows = []
    for s in c.strategies:
        cells = [s]
        for b in budgets:
            ci = interval_text(float(c.low[s][b - 1]), float(c.high[s][b - 1]), len(c.seeds), scale)
            cells.append(f"{scale * c.mean[s][b - 1]:.3g}{unit} {ci}")
        cells += [f"{ranks[b][s]:.2f}" for b in budgets]
        rows.append(cells)
    blocks += [Heading("Results", 2), Table(header, rows), Heading("Verdicts (paired over seeds)", 2),
               Bullets([cmp.sentence() for cmp in comparisons])]
    return blocks


def write_report(blocks: list[Any], out: Path, title: str) -> list[Path]:
    md, html = out / "benchmark.md", out / "benchmark.html"
    write_text(md, to_markdown(blocks))
    write_text(html, to_html(blocks, title))
    return [md, html]

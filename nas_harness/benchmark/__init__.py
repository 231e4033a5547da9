"""``nas-harness benchmark``: which search strategy finds good MBConv archs fastest, with intervals over seeds.

Strategies (Optuna samplers) x seeds x a trial budget run in memory on a benchmark table (its records only), its
surrogate (the whole space) or a table recorded from one's own finished studies.  Outputs: best-so-far regret or
hypervolume curves with 95 % intervals, mean ranks, pairwise paired differences at chosen budgets, a figure, a
Markdown/HTML report and CSV files; stored runs are reused (resumable).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nas_harness.benchmark._analysis import (
    Comparison,
    Curves,
    best_so_far,
    curves,
    expected_best_without_replacement,
    hypervolume_curve,
    mean_ranks,
    pairwise,
)
from nas_harness.benchmark._config import STRATEGIES, UNSUITED, BenchmarkConfig, load_benchmark
from nas_harness.benchmark._run import Problem, make_problem, run_benchmark, run_one

__all__ = ["STRATEGIES", "UNSUITED", "BenchmarkConfig", "BenchmarkResult", "Comparison", "Curves", "Problem",
           "benchmark", "best_so_far", "curves", "expected_best_without_replacement", "hypervolume_curve",
           "load_benchmark", "make_problem", "mean_ranks", "pairwise", "run_benchmark", "run_one"]


@dataclass
class BenchmarkResult:
    """Everything a benchmark produced: its runs, curves, comparisons and the files written."""

    config: BenchmarkConfig
    problem: Problem
    runs: list[dict[str, Any]]
    curves: Curves
    comparisons: list[Comparison]
    reference: float
    notes: list[str]
    outputs: list[Path] = field(default_factory=list)
    seconds: float = 0.0


def _reference(problem: Problem, runs: list[dict[str, Any]]) -> tuple[float, list[str]]:
    table = problem.table
    if problem.source != "surrogate":
        return table.best()[1], []
    from nas_harness.tables import accel_nasbench_surrogate

    fit = accel_nasbench_surrogate(problem.split_seed)
    on_table = float(np.max(fit.predict(table.features)))
    found = max(max(r["acc"]) for r in runs)
    m = fit.metrics
    return max(on_table, found), [
        f"surrogate: gradient-boosted trees, held-out Kendall tau {m['test_kendall_tau']:.3f} and RMSE "
        f"{100 * m['test_rmse']:.2f} pp (split seed {problem.split_seed}); the table's best recorded accuracy is "
        f"{100 * table.best()[1]:.2f} %"]


def benchmark(cfg: BenchmarkConfig, log: Callable[[str], None] = print, figure: bool = True) -> BenchmarkResult:
    """Run (or resume) a benchmark file and write its outputs into ``cfg.out_dir``."""
    t0 = time.perf_counter()
    problem, runs = run_benchmark(cfg, log)
    multi = cfg.objective == "multi"
    reference, notes = _reference(problem, runs)
    acc_range = (float(problem.table.val_acc.min()), float(problem.table.val_acc.max()))
    cost = problem.cost_values()
    cost_range = (float(np.nanmin(cost)), float(np.nanmax(cost))) if cost is not None else (0.0, 1.0)
    if problem.source == "table":
        notes.append("model-based proposals are mapped onto the nearest unseen record (Hamming distance over the "
                     "per-stage choices, ties at random); random draws records without replacement")
    if problem.table.name.startswith("accel_nasbench"):
        notes.append("data: Accel-NASBench (Ahmad et al., DAC 2024; Apache-2.0): ImageNet-1k top-1 after the "
                     "benchmark's reduced training proxy")
    if multi and cfg.cost.startswith("throughput"):
        notes.append(f"cost {cfg.cost}: throughput is maximised (the hypervolume uses -throughput)")
    c = curves(runs, cfg.strategies, reference, multi, acc_range, cost_range)
    comps = pairwise(c, cfg.compare_at)
    from nas_harness.benchmark._report import document, plot_curves, write_csv, write_report

    out = cfg.out_dir
    out.mkdir(parents=True, exist_ok=True)
    outputs = write_csv(c, comps, out)
    fig_name = None
    if figure:
        from nas_harness.plots._style import save

        fig = plot_curves(c, cfg.name)
        outputs += save(fig, out, "benchmark")
        fig_name = "benchmark.png"
    seconds = time.perf_counter() - t0
    outputs += write_report(document(cfg, problem, c, comps, reference, notes, fig_name), out,
                            f"Benchmark {cfg.name}")
    return BenchmarkResult(cfg, problem, runs, c, comps, reference, notes, outputs, seconds)

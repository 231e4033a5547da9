"""``nas-harness benchmark FILE``: compare search strategies on a benchmark table, its surrogate or a table recorded
from one's own finished studies, with 95 % intervals over seeds.

Writes ``benchmark.md``, ``benchmark.html``, ``benchmark.{png,svg}``, ``benchmark_curves.csv`` and
``benchmark_pairs.csv`` into ``<results_dir>/<name>``; each finished (strategy, seed) run is stored under
``runs/``, so re-running resumes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nas_harness.cli._checks import integer, text


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="compare search strategies on a benchmark table or surrogate (no training)",
                       description="Run strategies (Optuna samplers) x seeds x a trial budget in memory on the "
                                   "Accel-NASBench table (its records only), its surrogate (the whole space) or a "
                                   "table recorded from finished studies (--table-from); report best-so-far regret "
                                   "or hypervolume vs trials with 95% intervals, mean ranks and paired "
                                   "differences at chosen budgets. Re-running resumes from the stored runs.")
    p.add_argument("file", nargs="?", default=None, type=text(),
                   help="benchmark file (TOML), e.g. studies/benchmark_anb.toml; optional with --table-from")
    p.add_argument("--table-from", nargs="+", default=None, type=text(), metavar="RESULTS_DIR",
                   help="make the table from these studies' finished trials (their trials.csv): source = 'recorded'")
    p.add_argument("--seeds", type=integer(2, 1000), default=None, help="seeds per strategy (file: seeds)")
    p.add_argument("--trials", type=integer(2, 100_000), default=None,
                   help="trials per run (file: trials; the file's budgets beyond it are dropped)")
    p.add_argument("--workers", type=integer(0, 256), default=None, help="processes, 0 = CPUs (file: workers)")
    p.add_argument("--results-dir", type=text(), default=None, help="outputs folder (file: results_dir)")
    p.add_argument("--no-figure", action="store_true", help="skip the figure")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nas_harness.benchmark import BenchmarkConfig, benchmark, load_benchmark
    from nas_harness.errors import ConfigError

    overrides = {"seeds": args.seeds, "trials": args.trials, "workers": args.workers,
                 "results_dir": args.results_dir}
    if args.table_from:
        overrides.update(source="recorded", recorded=list(args.table_from))
    if args.file is not None:
        cfg = load_benchmark(args.file, overrides)
    elif args.table_from:
        name = "recorded-" + "-".join(Path(d).name for d in args.table_from)[:50]
        cfg = BenchmarkConfig.from_dict({"name": name, **{k: v for k, v in overrides.items() if v is not None}}, "")
    else:
        raise ConfigError("benchmark: give a benchmark FILE or --table-from RESULTS_DIR")
    from nas_harness._config import refuse_special_outputs

    refuse_special_outputs(cfg.out_dir, "results_dir")  # a FIFO among the outputs or stored runs: refused now
    res = benchmark(cfg, figure=not args.no_figure)
    for cmp in res.comparisons:
        if cmp.at == cfg.trials:
            print(cmp.sentence())
    for p in res.outputs:
        print(f"  wrote {p}")
    print(f"benchmark {cfg.name}: {len(res.runs)} runs, {res.seconds:.0f} s")
    return 0

"""``nas-harness confirm RESULTS_DIR``: retrain the best search archs and the references over fresh seeds.

Writes ``confirm.csv``, ``confirm_pairs.csv``, ``confirm.md`` and ``confirm.{png,svg}`` into the results
folder; re-running the same command resumes (runs already stored are not trained again).
"""

from __future__ import annotations

import argparse

from nas_harness.cli._checks import integer, number, text
from nas_harness.cli._format import add_study_source, finish_evaluation
from nas_harness.cli._track import add_tracking_flags, evaluation_tracking


def add_run_flags(p: argparse.ArgumentParser) -> None:
    """Backend and progress flags shared by ``confirm`` and ``fidelity``."""
    p.add_argument("--backend", choices=("local", "ray"), default="local", help="run locally or as Ray tasks")
    p.add_argument("--workers", type=integer(0, 1024), default=0,
                   help="local: runs at once, each a worker process (default 0: the cores divided by the study's "
                        "threads per run)")
    p.add_argument("--cpus-per-job", type=number(0.01, 1024), default=1.0,
                   help="Ray: CPUs per run (default 1)")
    p.add_argument("--gpus-per-job", type=number(0, 64), default=0.0,
                   help="Ray: GPUs per run, fractional ok (default 0)")
    p.add_argument("--max-concurrent", type=integer(0, 100_000), default=0,
                   help="Ray: concurrent runs, 0 = as resources allow")
    p.add_argument("--ray-address", default="", type=text(1024, empty=True),
                   help="Ray: join this cluster (default $RAY_ADDRESS or a local Ray)")
    p.add_argument("--out", default=None, type=text(),
                   help="output folder (default: the study's results folder); when the study's storage cannot be "
                        "written (a read-only copy), the runs are stored here too, in runs.db")
    p.add_argument("--retry-failed", action="store_true", help="run again (arch, seed) runs that failed")
    p.add_argument("--report-only", action="store_true", help="only (re)write the outputs from stored runs")
    p.add_argument("--no-figure", action="store_true", help="skip the figure")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (one line per finished run)")
    add_tracking_flags(p)


def ray_config(args: argparse.Namespace) -> object:
    from nas_harness.backends.settings import RayConfig

    return RayConfig(cpus_per_trial=args.cpus_per_job, gpus_per_trial=args.gpus_per_job,
                     max_concurrent=args.max_concurrent, address=args.ray_address)


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="retrain the top Pareto archs and the references over fresh seeds",
                       description="Retrain the top-K archs of a search (by validation accuracy, never test) and "
                                   "its reference archs with S fresh seeds at the study's own recipe; report means "
                                   "with 95% intervals, paired differences vs each reference and the Pareto front "
                                   "of the means. Re-running resumes.")
    add_study_source(p)
    p.add_argument("--top", type=integer(0, 1000), default=3, help="best search archs to retrain (default 3)")
    p.add_argument("--seeds", type=integer(1, 1000), default=3,
                   help="fresh seeds per arch; the search's own seed is skipped (default 3)")
    p.add_argument("--by", choices=("pareto", "val_acc", "reward"), default="pareto",
                   help="validation ranking the top archs come from (default: the val_acc/MACs Pareto front)")
    p.add_argument("--no-references", action="store_true", help="do not retrain the study's reference archs")
    p.add_argument("--test", action="store_true", help="also measure the test split (reported, never used to rank)")
    p.add_argument("--scaling", action="store_true",
                   help="retrain the best groups of the compound-scaling search (<study>-scaling) instead")
    add_run_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nas_harness.evaluation.confirm import ConfirmSettings, run_confirm

    settings = ConfirmSettings(top=args.top, seeds=args.seeds, by=args.by, references=not args.no_references,
                               evaluate_test=args.test, scaling=args.scaling, backend=args.backend,
                               ray=ray_config(args), workers=args.workers)
    tracking, on_record = evaluation_tracking(args, "confirm", "confirm", args.scaling)
    res = run_confirm(args.study, settings, study_name=args.study_name, out_dir=args.out,
                      retry_failed=args.retry_failed, progress=not args.no_progress, figure=not args.no_figure,
                      report_only=args.report_only, on_record=on_record)
    tracking.artifacts(res.outputs)
    tracking.close()
    from nas_harness.evaluation.confirm import markdown

    return finish_evaluation(markdown(res), res.outputs, res.failed, "confirm.md")

"""``nas-harness report``: Markdown + HTML report of a study (settings, Pareto table, figures, reproduction)."""

from __future__ import annotations

import argparse

from nas_harness.cli._checks import text
from nas_harness.cli._format import add_study_source
from nas_harness.cli._plot import add_reference


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="Markdown/HTML report of a study with its Pareto table and figures",
                       description="Write report.md, report.html, trials.csv/.parquet and figures/ into the "
                                   "study folder (or --out) and print their paths.")
    add_study_source(p)
    p.add_argument("--out", type=text(), help="output folder (default: the study folder)")
    p.add_argument("--no-figures", action="store_true", help="tables only (faster)")
    p.add_argument("--metric", default="val_acc", choices=["val_acc", "val_acc_final", "test_acc"],
                   help="accuracy of the Pareto front (default val_acc)")
    add_reference(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from pathlib import Path

    from nas_harness.cli._checks import keep, output_dir
    from nas_harness.report import write_report
    from nas_harness.results import ReferencePoint, resolve_source

    ref = ReferencePoint(args.ref_cost, args.ref_acc) if args.ref_cost else None
    src = resolve_source(args.study, args.study_name)
    out = Path(args.out) if args.out else src.out_dir
    keep(args, writing=out, kept=f"the study in {src.label} is unchanged (report only reads it); the report "
                                 "files written so far were removed")
    with output_dir(out, "--out"):
        paths = write_report(args.study, src.study_name, out_dir=out, figures=not args.no_figures,
                             reference=ref, metric=args.metric)
    for p in [paths.markdown, paths.html, *paths.tables, *paths.figures]:
        print(p)
    return 0

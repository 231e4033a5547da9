"""``nas-harness plot``: write a study's figures (PNG + SVG) into its folder, or compare several studies."""

from __future__ import annotations

import argparse
from pathlib import Path

from nas_harness._config import RESULTS_DIR
from nas_harness.cli._checks import number, text


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="accuracy-vs-cost/Pareto, progress and importance figures of a study",
                       description="Write figures into <study folder>/figures and print their paths.")
    p.add_argument("studies", nargs="*", metavar="STUDY", type=text(),
                   help="results/<study> folder, SQLite/journal file or storage URL (several with --compare)")
    p.add_argument("--storage", type=text(),
                   help="Optuna storage URL (sqlite:///..., postgresql://..., journal:<file>)")
    p.add_argument("--study", action="append", default=[], metavar="NAME", type=text(1024),
                   help="study name in --storage or STUDY (repeat with --compare)")
    p.add_argument("--compare", action="store_true",
                   help="compare the studies: hypervolume over trials and overlaid Pareto fronts")
    p.add_argument("--out", type=text(),
                   help="output folder (default: <study folder>/figures; with --compare results/compare)")
    p.add_argument("--choice", type=text(200), help="colour accuracy-vs-MACs by this search choice, e.g. s5_se "
                                                    "(default: the most important one)")
    p.add_argument("--metric", default="val_acc", choices=["val_acc", "val_acc_final", "test_acc"],
                   help="accuracy to plot (default val_acc)")
    p.add_argument("--format", nargs="+", default=["png", "svg"], choices=["png", "svg", "pdf"],
                   help="figure formats (default: png svg)")
    add_reference(p)
    p.set_defaults(func=run)


def add_reference(p: argparse.ArgumentParser) -> None:
    """--ref-cost (old name --ref-macs) / --ref-acc: the hypervolume reference point (shared by plot and report),
    in the study's cost units."""
    p.add_argument("--ref-cost", "--ref-macs", dest="ref_cost", type=number(0, 1e15, lo_open=True),
                   help="hypervolume reference cost in the study's cost units (MACs, parameters or ms, as its "
                        "[objective] cost), in (0, 1e15] (default 1.1 x the largest); --ref-macs is the old name")
    p.add_argument("--ref-acc", type=number(0, 1, hi_open=True), default=0.0,
                   help="hypervolume reference accuracy in [0, 1) (default 0)")


def sources(args: argparse.Namespace) -> list[tuple[str, str | None]]:
    """(storage, study name) pairs from positional STUDY arguments and --storage/--study."""
    from nas_harness.errors import ConfigError

    out: list[tuple[str, str | None]] = []
    if args.storage:
        out += [(args.storage, n) for n in (args.study or [None])]
        out += [(s, None) for s in args.studies]
    elif len(args.studies) == 1 and args.study:
        out += [(args.studies[0], n) for n in args.study]
    else:
        if args.study:
            raise ConfigError("--study: give one STUDY (or --storage) when naming studies with --study")
        out += [(s, None) for s in args.studies]
    if not out:
        raise ConfigError("study: give a results/<study> folder, a storage file, or --storage URL --study NAME")
    return out


def run(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from nas_harness.cli._checks import keep, output_dir
    from nas_harness.errors import ConfigError
    from nas_harness.plots import write_comparison_figures, write_study_figures
    from nas_harness.results import ReferencePoint, resolve_source

    pairs = sources(args)
    ref = ReferencePoint(args.ref_cost, args.ref_acc) if args.ref_cost else None
    if args.compare:
        out = Path(args.out) if args.out else Path(RESULTS_DIR) / "compare"
        keep(args, writing=out, kept="the studies are unchanged (plot only reads them); the figures written so "
                                         "far were removed")
        with output_dir(out, "--out"):
            paths = write_comparison_figures(pairs, out, args.format, metric=args.metric, reference=ref)
    else:
        if len(pairs) != 1:
            raise ConfigError(f"study: got {len(pairs)} studies; pass --compare to compare them")
        (source, name), = pairs
        src = resolve_source(source, name)
        out = Path(args.out) if args.out else src.out_dir / "figures"
        keep(args, writing=out, kept=f"the study in {src.label} is unchanged (plot only reads it); the "
                                     "figures written so far were removed")
        with output_dir(out, "--out"):
            paths = write_study_figures(source, src.study_name, out_dir=out, formats=args.format,
                                        choice=args.choice, metric=args.metric, reference=ref)
    for p in paths:
        print(p)
    return 0

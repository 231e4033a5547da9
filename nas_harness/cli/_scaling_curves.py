"""``nas-harness scaling-curves FILE``: the EfficientNet paper's width / depth / resolution study (its Figures
3, 4 and 8) on a proxy: train every variant over paired seeds, then the figures and a report with intervals.

Re-running the same command resumes: (network, seed) runs already stored are not trained again.
"""

from __future__ import annotations

import argparse

from nas_harness.cli._checks import check_arch_size, integer, text


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(
        name,
        help="scaling curves: width / depth / resolution / compound scaling of a base, accuracy vs MACs",
        description="Scale a base arch by width only, depth only, resolution only, width at fixed (depth, "
        "resolution) and compound scaling (EfficientNet Figs. 3, 4, 8); train every variant over paired seeds, "
        "store each run durably (resumable, local or Ray), and write results/<name>/report.{md,html}, CSVs and "
        "figures: where each curve stops gaining and compound vs single scaling at matched MACs, with 95% "
        "intervals.",
    )
    p.add_argument("file", metavar="FILE", type=text(), help="scaling-curves TOML file "
                   "(e.g. studies/scaling_curves_b0.toml)")
    p.add_argument("--check", action="store_true", help="validate the file and list every variant with its arch, "
                   "resolution and MACs; train nothing")
    p.add_argument("--seeds", type=integer(1, 10_000), default=None, metavar="N",
                   help="override the file's seeds with 0..N-1 (1-10000)")
    p.add_argument("--backend", choices=("local", "ray"), default=None, help="override run.backend")
    p.add_argument("--storage", default=None, type=text(), help="override the storage URL (run.storage)")
    p.add_argument("--retry-failed", action="store_true", help="run again pairs whose stored run failed")
    p.add_argument("--report-only", action="store_true", help="only (re)write the report from stored runs")
    p.add_argument("--no-figure", action="store_true", help="skip the figures")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (one line per finished run)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nas_harness.cli._checks import check_dir_writable, keep, output_dir, storage_file
    from nas_harness.data import load_proxy
    from nas_harness.records import check_writable, redact
    from nas_harness.scaling_curves import load_records, load_scaling_curves, network_macs, run_curves, write_report

    cfg = load_scaling_curves(args.file)
    if args.seeds is not None:
        cfg = cfg.with_seeds(args.seeds)
    if args.backend is not None:
        cfg = cfg.with_backend(args.backend)
    if args.storage is not None:
        cfg = cfg.with_storage(args.storage)
    for p in cfg.points:  # what is counted and trained must be of a sane size
        check_arch_size(p.arch, f"curves: {p.curve} {p.label}", p.resolution)
    num_classes = load_proxy(cfg.data).num_classes
    if args.check:
        nets = cfg.networks()
        a, b, g = cfg.coefficients
        print(f"scaling curves {cfg.name}: {len(cfg.points)} points on {len(cfg.curve_names())} curves, "
              f"{len(nets)} distinct networks x {len(cfg.seeds)} seeds {list(cfg.seeds)} = "
              f"{len(nets) * len(cfg.seeds)} runs; compound alpha={a:g} beta={b:g} gamma={g:g} "
              f"({cfg.coefficient_source}); storage {redact(cfg.storage_url)}; x axis: {cfg.curves.macs} MACs")
        for p in cfg.points:
            m = network_macs(cfg, p, num_classes)
            print(f"  {p.curve:<22} {p.label:<8} w={p.width:.3f} d={p.depth:.3f} {p.resolution:>4} px "
                  f"deployed {m['deployed'] / 1e6:9.2f}M MACs ({p.macs_resolution} px)  proxy "
                  f"{m['proxy'] / 1e6:8.2f}M MACs  {m['params'] / 1e6:7.3f}M params")
        return 0
    check_dir_writable(cfg.out_dir, "run.results_dir")  # before anything is created or trained
    keep(args, storage=storage_file(cfg.storage_url), kept=lambda: _kept(cfg), writing=cfg.out_dir)
    if args.report_only:
        records = load_records(cfg)
        failed = [r for r in records if r.state != "ok"]
    else:
        check_writable(cfg.storage_url)
        result = run_curves(cfg, retry_failed=args.retry_failed, progress=not args.no_progress)
        records, failed = result.records, result.failed
        print(f"ran {len(result.ran)} run(s) in {result.wall_s / 60:.1f} min; {len(result.skipped)} were stored "
              f"already; {len(failed)} failed")
    with output_dir(cfg.out_dir, "run.results_dir"):
        paths, text_ = write_report(cfg, records, num_classes, figure=not args.no_figure)
    print(text_)
    print("wrote " + ", ".join(str(p) for p in paths))
    return 1 if failed else 0


def _kept(cfg) -> str:
    """What survives a failure mid-run (a full disk): the finished runs in the storage."""
    from nas_harness.cli._checks import kept_in_storage

    return kept_in_storage(cfg.storage_url, cfg.name, "run", ("COMPLETE",))

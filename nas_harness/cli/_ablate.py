"""``nas-harness ablate FILE``: train a base arch and its variants over several seeds; table + figure.

Re-running the same command resumes: (variant, seed) runs already stored are not trained again.
"""

from __future__ import annotations

import argparse

from nas_harness.cli._checks import check_arch_size, integer, text
from nas_harness.cli._track import add_tracking_flags


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(
        name,
        help="ablation: base arch vs variants (no SE, no skips, ...) over seeds",
        description="Train every (variant, seed) pair of an ablation file, store each run durably (resumable), "
        "and write results/<name>/summary.{md,html,csv}, runs.csv and ablation.{png,svg}. With a [compare_budget] "
        "table the same variants also run at a second budget and the report says whether the ranking agreed; with "
        "a [supernet] table every variant is also scored with a supernet's inherited weights and the report says "
        "whether its verdicts agree with the from-scratch ones.",
    )
    p.add_argument("file", metavar="FILE", type=text(), help="ablation TOML file (e.g. studies/ablation_b0.toml)")
    p.add_argument("--seeds", type=integer(1, 10_000), default=None, metavar="N",
                   help="override the file's seeds with 0..N-1 (1-10000)")
    p.add_argument("--backend", choices=("local", "ray"), default=None, help="override [backend] kind")
    p.add_argument("--workers", type=integer(0, 1024), default=None,
                   help="local: runs at once, each a worker process (run.workers; 0: the cores divided by the "
                        "threads per run)")
    p.add_argument("--storage", default=None, type=text(),
                   help="override the storage URL holding the runs (run.storage)")
    p.add_argument("--retry-failed", action="store_true", help="run again pairs whose stored run failed")
    p.add_argument("--report-only", action="store_true", help="only (re)write the report from stored runs")
    p.add_argument("--dry-run", action="store_true", help="validate the file and list variants, train nothing")
    p.add_argument("--no-figure", action="store_true", help="skip the seaborn figure")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (one line per finished run)")
    add_tracking_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nas_harness.ablation import load_ablation
    from nas_harness.ablation.report import write_report
    from nas_harness.ablation.runner import load_records, run_ablation
    from nas_harness.ablation.supernet import load_supernet_records
    from nas_harness.cli._checks import check_dir_writable, keep, output_dir, storage_file
    from nas_harness.records import check_writable, redact

    cfg = load_ablation(args.file)
    if args.seeds is not None:
        cfg = cfg.with_seeds(args.seeds)
    if args.backend is not None:
        cfg = cfg.with_backend(args.backend)
    if args.storage is not None:
        cfg = cfg.with_storage(args.storage)
    if args.workers is not None:
        cfg = cfg.with_workers(args.workers)
    if args.mlflow is not None or args.tensorboard is not None:
        from nas_harness.cli._track import flag_tracking

        cfg = cfg.with_tracking(flag_tracking(args, cfg.tracking))
    for variant, arch in cfg.archs.items():  # what is counted and trained must be of a sane size
        check_arch_size(arch, f"variants: {variant!r}")
    if args.dry_run:
        from nas_harness.data import load_proxy
        from nas_harness.flops import count_macs, count_params

        classes = cfg.trial.macs_num_classes or load_proxy(cfg.data).num_classes
        print(f"ablation {cfg.name}: {len(cfg.variants)} variants x {len(cfg.seeds)} seeds "
              f"{list(cfg.seeds)}; storage {redact(cfg.storage_url)}; MACs at {cfg.trial.macs_resolution} px, "
              f"{classes}-class head")
        for v, a in cfg.archs.items():
            macs = count_macs(a, cfg.trial.macs_resolution, num_classes=classes).total
            print(f"  {v:<16} {count_params(a, classes) / 1e6:7.3f}M params {macs / 1e6:8.1f}M MACs  {a}")
        if cfg.supernet is not None:
            space, sample_skip, missing = cfg.supernet_plan
            print(f"supernet: a space of {space.size:,} archs around the base"
                  f"{', residual skips sampled' if sample_skip else ''}; "
                  + ("; ".join(f"{v} is not in it ({why})" for v, why in missing.items()) or "it holds every variant"))
        return 0
    check_dir_writable(cfg.out_dir, "run.results_dir")  # before anything is created or trained
    keep(args, storage=storage_file(cfg.storage_url), kept=lambda: _kept(cfg), writing=cfg.out_dir)
    cfg2 = cfg.second_budget()
    second = None
    if args.report_only:
        records = load_records(cfg)
        scores = load_supernet_records(cfg)
        failed = [r for r in records if r.state != "ok"]
        if cfg2 is not None:
            second = (cfg2, load_records(cfg2))
            failed += [r for r in second[1] if r.state != "ok"]
    else:
        check_writable(cfg.storage_url)
        tracking, on_record = _tracking(cfg)
        result = run_ablation(cfg, retry_failed=args.retry_failed, progress=not args.no_progress,
                              on_record=on_record)
        records, failed, scores = result.records, result.failed, result.supernet
        failed = failed + [r for r in scores if r.state != "ok"]
        print(f"ran {len(result.ran)} run(s) in {result.wall_s / 60:.1f} min; {len(result.skipped)} were stored "
              f"already; {len(failed)} failed")
        if cfg2 is not None:
            tracking2, on_record2 = _tracking(cfg2)
            result2 = run_ablation(cfg2, retry_failed=args.retry_failed, progress=not args.no_progress,
                                   on_record=on_record2)
            tracking2.close()
            second = (cfg2, result2.records)
            failed = failed + result2.failed
            print(f"second budget ({cfg2.budget_text()}): ran {len(result2.ran)} run(s) in {result2.wall_s / 60:.1f} "
                  f"min; {len(result2.skipped)} were stored already; {len(result2.failed)} failed")
    with output_dir(cfg.out_dir, "run.results_dir"):
        paths, text = write_report(cfg, records, figure=not args.no_figure, second=second, supernet=scores)
    print(text)
    print(f"wrote {paths.markdown} (and .html), {paths.summary_csv}, {paths.runs_csv}"
          + (f", {cfg.out_dir / 'supernet.csv'}" if cfg.supernet is not None else "")
          + "".join(f", {p}" for p in paths.figures))
    if not args.report_only:
        extra = [p for p in (paths.markdown.with_suffix(".html"), cfg.out_dir / "supernet.csv") if p.is_file()]
        tracking.artifacts([paths.markdown, paths.summary_csv, paths.runs_csv, *paths.figures, *extra])
        tracking.close()
    return 1 if failed else 0


def _tracking(cfg):
    """The ablation's experiment trackers ([tracking]) and the callback that logs each stored run."""
    from nas_harness.cli._track import job_tracking
    from nas_harness.tracking import flat_params

    return job_tracking(cfg.tracking, cfg.name, cfg.out_dir, "ablation",
                        secrets=[cfg.storage_url, cfg.ray.address],
                        params=flat_params({k: v for k, v in cfg.to_dict().items() if k != "variant"}))


def _kept(cfg) -> str:
    """What survives a failure mid-run (a full disk): the finished runs in the storage."""
    from nas_harness.cli._checks import kept_in_storage

    return kept_in_storage(cfg.storage_url, cfg.name, "run", ("COMPLETE",))

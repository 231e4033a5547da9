"""``nas-harness bench``: run benchmark suites and write their figures to JSON under results/."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nas_harness._config import RESULTS_DIR, write_text
from nas_harness.cli._checks import text

DEFAULT_OUT = f"{RESULTS_DIR}/bench/bench.json"


def add_parser(subparsers: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(name, help="benchmark the trainer vs a conventional pipeline, and FLOP counting",
                              description=__doc__)
    p.add_argument("--suite", nargs="+", metavar="NAME", default=None, type=text(64),
                   help="suites to run (default: all; e.g. trainer flops)")
    p.add_argument("--quick", action="store_true", help="fewer steps/repeats (a smoke run, noisier figures)")
    p.add_argument("--out", default=DEFAULT_OUT, type=text(), help=f"JSON output path (default {DEFAULT_OUT})")
    p.set_defaults(func=run)
    return p


def _summary(name: str, res: dict) -> str:
    if name == "trainer":
        return (f"trainer: {res['trainer_images_per_s']:.1f} img/s vs conventional "
                f"{res['conventional_images_per_s']:.1f} img/s -> {res['ratio']:.2f}x "
                f"[model kernels {res['ratio_from_model_kernels']:.2f}x, data path + layout "
                f"{res['ratio_from_data_path_and_layout']:.2f}x] "
                f"(threads=auto: {res['trainer_auto_threads_images_per_s']:.1f} img/s, "
                f"{res['ratio_auto_threads']:.2f}x)")
    if name == "accuracy" and "val_acc" in res:
        return (f"accuracy: {res['val_acc']:.1%} validation accuracy after {res['epochs']} epoch(s) on "
                f"{res['train_images']} images at {res['resolution']} px in {res['wall_time_s']:.0f} s "
                f"({res['images_per_s']:.0f} img/s, {res['threads']} threads)")
    if name == "flops":
        return "flops: " + ", ".join(f"{c['case']} {c['speed_ratio']:.0f}x faster analytic "
                                     f"(diff {c['rel_diff']:.1e})" for c in res["cases"])
    if name == "supernet":
        def tau(v: object, ci: object) -> str:
            show = lambda x: "?" if x is None else f"{x:.2f}"  # noqa: E731
            return f"{show(v)} [{', '.join(show(x) for x in (ci or [None, None]))}]"

        return "supernet: " + "; ".join(
            f"{s}: train {res[s]['train_s']:.0f} s, {res[s]['subnets_per_min']:.0f} subnets/min, train + 1,000 "
            f"{res[s]['train_plus_1000_min']:.1f} min, tau {tau(res[s]['kendall_tau'], res[s]['kendall_tau_ci'])} vs "
            f"MACs {tau(res[s]['macs_kendall_tau'], res[s]['macs_kendall_tau_ci'])} ({res[s]['verdict_vs_macs']})"
            for s in ("uniform", "sandwich"))
    keys = [k for k, v in res.items() if isinstance(v, (int, float))][:4]
    return f"{name}: " + ", ".join(f"{k}={res[k]}" for k in keys)


def run(args: argparse.Namespace) -> int:
    from nas_harness.bench import run_suites, suites
    from nas_harness.cli._checks import keep, output_dir, output_file
    from nas_harness.errors import ConfigError

    out = output_file(args.out, "--out")  # before the (long) suites run
    unknown = [n for n in args.suite or [] if n not in suites()]
    if unknown:
        raise ConfigError(f"--suite {unknown[0]!r} is unknown; allowed: {', '.join(suites())}")
    result = run_suites(args.suite, quick=args.quick, log=lambda m: print(m, file=sys.stderr, flush=True))
    for name, res in result["suites"].items():  # printed first: a disk that fills up cannot lose them
        print(_summary(name, res))
    keep(args, writing=out, kept="the figures are printed above; no partial file was left")
    with output_dir(out.parent if str(out.parent) else Path("."), "--out"):
        out.parent.mkdir(parents=True, exist_ok=True)
        write_text(out, json.dumps(result, indent=2) + "\n", f"--out {str(out)!r}")
    print(f"wrote {out}")
    return 0

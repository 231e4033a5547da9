"""``nas-harness doctor``: what this machine offers the harness; ``--gpu`` runs the GPU check in one command."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nas_harness._config import RESULTS_DIR

DEFAULT_OUT = f"{RESULTS_DIR}/doctor/gpu.json"


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    from nas_harness.doctor import CHECKS

    p = sub.add_parser(name, help="machine facts; --gpu: the GPU check (CUDA training, trainer bench, quickstart, "
                                  "Ray at 0.25 GPU, compile vs eager)",
                       description="Without --gpu: Python, torch, CUDA, data, C compiler, Ray, PostgreSQL, disk. "
                                   "With --gpu: the checks of nas_harness.doctor on one GPU (a few minutes), one "
                                   "summary table and a JSON file.")
    p.add_argument("--gpu", action="store_true", help="run the GPU check")
    p.add_argument("--device", default="cuda", help="device for --gpu (cuda, cuda:N; cpu = a toy dry run)")
    p.add_argument("--quick", action="store_true", help="toy sizes (smoke test of the checks)")
    p.add_argument("--only", nargs="+", metavar="CHECK", help=f"run only these checks ({', '.join(CHECKS)})")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"JSON output (default {DEFAULT_OUT})")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nas_harness.cli._format import table
    from nas_harness.doctor import environment, gpu_check, write_json
    from nas_harness.errors import ConfigError

    if not args.gpu:
        for key, value in environment().items():
            print(f"{key:16} {value}")
        return 0
    if not (args.device in ("cpu", "cuda") or (args.device.startswith("cuda:") and args.device[5:].isdigit())):
        raise ConfigError(f"--device {args.device!r} is invalid; allowed: cuda, cuda:<index>, cpu")
    from nas_harness.cli._checks import output_file

    output_file(args.out, "--out")  # a folder, FIFO or read-only place there: refused before the checks run
    report = gpu_check(args.device, quick=args.quick, only=args.only,
                       log=lambda m: print(m, file=sys.stderr, flush=True))
    path = write_json(report, Path(args.out))
    rows = [[name, "ok" if r.get("ok") else "FAILED", f"{r.get('time_s', 0):.0f} s", r.get("summary", "")]
            for name, r in report["checks"].items()]
    print(table(["check", "result", "time", "what was measured"], rows))
    print(f"wrote {path}")
    failed = [n for n, r in report["checks"].items() if not r.get("ok")]
    if failed:
        print(json.dumps({n: report["checks"][n].get("summary") for n in failed}), file=sys.stderr)
    return 1 if failed else 0

"""``nas-harness latency``: predicted (and measured) latency of an arch, or fill the table for a study's space.

    nas-harness latency b0                                  # predicted, from results/latency/<device>.json
    nas-harness latency b0 --measure --device cpu --threads 1 --batch 1
    nas-harness latency --build-table my_study.toml   # every block the study's space can need

Entries the table lacks are measured first and saved (lazily); on a busy machine they are noisy, so build the
table ahead of time on a quiet one (``--build-table``).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from nas_harness._config import RESULTS_DIR


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="predicted / measured latency of an arch; fill the latency table of a study",
                       description="ARCH is b0..b7, an arch string, or a file holding one. Latency is predicted "
                                   "from the per-device lookup table (missing entries are measured and saved).")
    p.add_argument("arch", metavar="ARCH", nargs="?", default=None)
    p.add_argument("--build-table", metavar="STUDY.toml", default=None,
                   help="measure every table entry the study's space can need, and fit the network overhead")
    p.add_argument("--device", default=None, help="cpu (default) or cuda / cuda:N")
    p.add_argument("--threads", type=int, default=None, help="CPU threads of the measurement (default 1)")
    p.add_argument("--batch", type=int, default=None, help="batch size (default 1)")
    p.add_argument("--resolution", type=int, default=None,
                   help="input size in px (default: the variant's own for b0..b7, else 224)")
    p.add_argument("--num-classes", type=int, default=None, help="classifier size (default 1000)")
    p.add_argument("--table", default=None, help="table file (.json) or folder (default results/latency/)")
    p.add_argument("--repeats", type=int, default=None, help="timed runs per round of a measurement (default 20)")
    p.add_argument("--warmup", type=int, default=None, help="untimed runs first (default 5)")
    p.add_argument("--measure", action="store_true", help="also measure the whole network end to end")
    p.add_argument("--no-fill", action="store_true", help="do not measure missing entries: fail instead")
    p.add_argument("--parts", action="store_true", help="print every block's table entry")
    p.add_argument("--fit-networks", type=int, default=None,
                   help="networks measured end to end for the overhead fit (default 12 with --build-table, else 4)")
    p.set_defaults(func=run)


def _positive(args: argparse.Namespace, *names: str) -> None:
    from nas_harness.errors import ConfigError

    for n in names:
        v = getattr(args, n)
        if v is not None and v < (0 if n == "warmup" else 1):
            raise ConfigError(f"--{n.replace('_', '-')}: expected an integer >= {0 if n == 'warmup' else 1}, got {v}")


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _describe_table(predictor: Any) -> str:
    t = predictor.table
    fmt = t.memory_format or "memory format not chosen yet"
    return f"{predictor.fingerprint} (table {t.path}, {len(t)} entries, {fmt})"


def _build_table(args: argparse.Namespace) -> int:
    from nas_harness.errors import ConfigError
    from nas_harness.latency import LatencyConfig, LatencyPredictor, space_keys
    from nas_harness.study.config import load_study

    if args.arch is not None:
        raise ConfigError("--build-table: give either ARCH or --build-table STUDY.toml, not both")
    fixed = [f"--{n.replace('_', '-')}" for n in ("device", "threads", "batch", "resolution", "num_classes", "table",
                                                  "repeats", "warmup") if getattr(args, n) is not None]
    if fixed or args.measure or args.no_fill or args.parts:
        flag = (fixed or ["--measure" if args.measure else "--no-fill" if args.no_fill else "--parts"])[0]
        raise ConfigError(f"{flag}: does not apply with --build-table; the study's [latency] table says how to measure")
    cfg = load_study(args.build_table)
    settings = cfg.latency_settings()
    if settings is None:
        (cfg.latency or LatencyConfig()).check_machine()
        settings = LatencyConfig().settings(cfg.trial.macs_resolution, cfg.trial.macs_num_classes or 1000,
                                            cfg.run.results_dir)
    space = cfg.search_space()
    predictor = LatencyPredictor(settings, log=_say)
    keys = space_keys(space, settings)
    missing = predictor.table.missing(keys)
    _say(f"study {cfg.name!r}: {len(keys)} table entries for its space ({space.size:,} archs) at "
         f"{settings.resolution} px, batch {settings.batch}; {len(missing)} to measure on {_describe_table(predictor)}")
    t0 = time.perf_counter()
    networks = args.fit_networks or 12
    have = (predictor.table.fits.get(settings.context) or {}).get("networks", [])
    archs = _sample_archs(space, max(0, networks - len(have)), cfg.seed, {n["arch"] for n in have})
    shown = [0]

    def progress(done: int, total: int) -> None:
        if done * 20 // total > shown[0] or done == total:
            shown[0] = done * 20 // total
            _say(f"  {done}/{total} measurements ({time.perf_counter() - t0:.0f} s)")

    before = predictor.measured
    fit, _ = predictor.build(keys, fit_archs=archs, progress=progress)
    measured = predictor.measured - before
    fit = fit or predictor.table.fits.get(settings.context)
    print(f"table:      {predictor.table.path}")
    print(f"device:     {predictor.fingerprint}")
    print(f"entries:    {len(predictor.table)} ({measured} measured now, {len(keys) - len(missing)} already there) "
          f"in {time.perf_counter() - t0:.1f} s, memory format {predictor.table.memory_format}")
    if fit is None:
        return 0
    err = fit.get("median_abs_rel_err")
    print(f"overhead:   network = {fit['slope']:.3f} x sum of entries (median ratio of "
          f"{fit['n_networks']} networks" + (f"; median |error| {100 * err:.1f}%)" if err is not None else ")"))
    return 0


def _sample_archs(space: Any, n: int, seed: int, skip: set[str]) -> list[Any]:
    import random

    rng, out = random.Random(seed), {}
    for _ in range(50 * n):
        if len(out) >= n:
            break
        a = space.sample(rng)
        if str(a) not in skip:
            out.setdefault(str(a), a)
    return list(out.values())


def run(args: argparse.Namespace) -> int:
    from nas_harness.errors import ConfigError

    _positive(args, "threads", "batch", "resolution", "num_classes", "repeats", "warmup", "fit_networks")
    if args.build_table is not None:
        return _build_table(args)
    if args.arch is None:
        raise ConfigError("ARCH: give an arch (b0..b7, an arch string or a file) or --build-table STUDY.toml")

    from nas_harness.latency import LatencyConfig, LatencyPredictor
    from nas_harness.presets import NAMED_VARIANTS, resolve_arch
    from nas_harness.space import SearchSpace

    key = args.arch.strip().lower().replace("efficientnet", "").lstrip("-_")
    arch = resolve_arch(args.arch)
    resolution = args.resolution or (NAMED_VARIANTS[key][2] if key in NAMED_VARIANTS else 224)
    given = {k: getattr(args, k) for k in ("device", "threads", "batch", "repeats", "warmup", "table")
             if getattr(args, k) is not None}
    if given.get("device", "cpu") != "cpu" and "threads" in given:
        raise ConfigError("--threads: applies to --device cpu only")
    lat = LatencyConfig.from_dict(given, "latency")
    lat.check_machine("latency")
    settings = lat.settings(resolution, args.num_classes or 1000, RESULTS_DIR)
    predictor = LatencyPredictor(settings, log=_say)
    if not args.no_fill:
        predictor.ensure_fit(SearchSpace.default(arch).sample, networks=args.fit_networks or 4)
    pred = predictor.predict(arch, fill=not args.no_fill)
    print(f"arch:       {arch}")
    print(f"device:     {_describe_table(predictor)}")
    print(f"input:      {settings.batch}x{settings.in_channels}x{resolution}x{resolution}, "
          f"{settings.num_classes} classes")
    fit = predictor.table.fits.get(settings.context)
    how = (f"blocks {pred.blocks_ms:.3f} + overhead {pred.overhead_ms:.3f}; fit on {fit['n_networks']} networks"
           if fit else "sum of entries; no overhead fit yet")
    print(f"predicted:  {pred.total_ms:.3f} ms ({how})")
    for kind, ms in pred.by_kind().items():
        print(f"  {kind + ':':<12s}{ms:.3f} ms")
    if args.parts:
        for k, ms in pred.parts:
            print(f"    {ms:9.4f} ms  {k}")
    if args.measure:
        m = predictor.measure(arch)
        wall = f"; wall clock {m.wall_median_ms:.3f} ms" if m.clock == "thread_cpu" else ""
        print(f"measured:   {m.median_ms:.3f} ms (median of {m.repeats}, IQR {m.iqr_ms:.3f} ms, clock {m.clock}, "
              f"{m.memory_format}{wall})")
        print(f"error:      {100 * (pred.total_ms - m.median_ms) / m.median_ms:+.1f}% (predicted vs measured)")
    return 0

"""``nas-harness info ARCH``: parameters, MACs and a per-stage table of one architecture."""

from __future__ import annotations

import argparse

from nas_harness.cli._checks import MAX_BUILD_PARAMS, check_arch_size, integer, text
from nas_harness.cli._format import human, table


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="parameters, MACs and per-stage table of an arch",
                       description="ARCH is b0..b7, an arch string (see nas_harness.arch), or a file holding one.")
    p.add_argument("arch", metavar="ARCH", type=text(10_000))
    p.add_argument("--resolution", type=integer(1, 16_384), default=None,
                   help="input size in px, 1-16384 (default: the variant's own for b0..b7, else 224)")
    p.add_argument("--num-classes", type=integer(1, 1_000_000), default=1000, help="1-1000000 (default 1000)")
    p.add_argument("--in-channels", type=integer(1, 1024), default=3, help="1-1024 (default 3)")
    p.add_argument("--stem-stride", type=int, choices=(1, 2), default=None,
                   help="proxy option: override the stem stride (1 for 28-32 px inputs)")
    p.add_argument("--fvcore", action="store_true", help=(
        "also count with fvcore on a built model (slower; refused when the trace would need more than 8 GiB)"))
    p.set_defaults(func=run)


def _resolve(text: str) -> tuple[object, int]:
    from nas_harness.presets import NAMED_VARIANTS, resolve_arch

    key = text.strip().lower().replace("efficientnet", "").lstrip("-_")
    arch = resolve_arch(text)
    return arch, NAMED_VARIANTS[key][2] if key in NAMED_VARIANTS else 224


def run(args: argparse.Namespace) -> int:
    from nas_harness.flops import FVCORE_MAX_BYTES, count_macs, count_params, fvcore_macs, stage_table, trace_bytes

    arch, default_res = _resolve(args.arch)
    res = args.resolution or default_res
    check_arch_size(arch, "arch")
    kw = dict(num_classes=args.num_classes, in_channels=args.in_channels)
    if args.fvcore:  # refused before anything is printed or built
        need = trace_bytes(arch, res, stem_stride=args.stem_stride, **kw)
        if need > FVCORE_MAX_BYTES:
            from nas_harness.errors import ConfigError

            raise ConfigError(f"--fvcore traces the model on one {res}x{res} image: about {need / 2**30:,.1f} GiB "
                              f"of activations; at most {FVCORE_MAX_BYTES >> 30} GiB (use a smaller --resolution, or "
                              "leave out --fvcore: the analytic count needs no memory)")
    macs = count_macs(arch, res, stem_stride=args.stem_stride, **kw)
    params = count_params(arch, **kw)
    print(f"arch:       {arch}")
    print(f"input:      {args.in_channels}x{res}x{res}, {args.num_classes} classes"
          + (f", stem stride {args.stem_stride}" if args.stem_stride else ""))
    print(f"params:     {params:,} ({human(params)})")
    print(f"MACs:       {macs.total:,} ({human(macs.total)}; fvcore convention: 1 multiply-add = 1 flop)")
    print("  by op:    " + ", ".join(f"{k} {v:,}" for k, v in macs.by_op.items()))
    print("  not in fvcore's total: " + ", ".join(f"{k} {v:,}" for k, v in macs.elementwise.items()))
    if args.fvcore:
        from nas_harness.errors import ConfigError
        from nas_harness.model import build_model

        if params > MAX_BUILD_PARAMS:
            raise ConfigError(f"--fvcore builds the model: {params:,} parameters; at most {MAX_BUILD_PARAMS:,}")

        model = build_model(arch, stem_stride=args.stem_stride, **kw)
        f = fvcore_macs(model, res, in_channels=args.in_channels)
        print(f"fvcore:     {f.total:,} ({'agrees' if f.total == macs.total else 'DIFFERS'} with the analytic count)")
    rows = []
    stages = {f"stage {i}": st for i, st in enumerate(arch.stages, start=1)}
    for r in stage_table(arch, res, stem_stride=args.stem_stride, **kw):
        st = stages.get(r.name)
        rows.append([r.name, str(st) if st else ("fc" if r.name == "head" else "conv3x3"),
                     r.channels, f"{r.hw[0]}x{r.hw[1]}", f"{r.params:,}", f"{r.macs:,}"])
    print()
    print(table(["part", "block", "out", "size", "params", "MACs"], rows))
    return 0

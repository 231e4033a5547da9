"""``nas-harness scale ARCH --phi 1 2 3``: the compound-scaled family of an arch."""

from __future__ import annotations

import argparse

from nas_harness.cli._checks import check_arch_size, integer, number, text
from nas_harness.cli._format import human, table

#: Stated ranges of the scaling flags (the study file's [scaling] table uses the same).
PHI_RANGE = (0.0, 10.0)
BASE_RANGE = (1.0, 4.0)


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    from nas_harness.scaling import DEFAULT_ALPHA, DEFAULT_BETA, DEFAULT_GAMMA

    p = sub.add_parser(name, help="table of compound-scaled variants of an arch",
                       description="depth = alpha^phi, width = beta^phi, resolution = gamma^phi x base resolution")
    base = number(*BASE_RANGE)
    p.add_argument("arch", metavar="ARCH", type=text(10_000), help="b0..b7, an arch string, or a file")
    # defaults are filled in by run(), so that --named can tell a flag given from a default
    p.add_argument("--phi", type=number(*PHI_RANGE), nargs="+", help="compound coefficients, each in [0, 10] "
                   "(default 0 1 2 3 4 5 6 7)")
    p.add_argument("--alpha", type=base, help=f"depth base in [1, 4] (default {DEFAULT_ALPHA})")
    p.add_argument("--beta", type=base, help=f"width base in [1, 4] (default {DEFAULT_BETA})")
    p.add_argument("--gamma", type=base, help=f"resolution base in [1, 4] (default {DEFAULT_GAMMA})")
    p.add_argument("--resolution", type=integer(8, 4096), help="base resolution, 8-4096 (default 224)")
    p.add_argument("--num-classes", type=integer(1, 1_000_000), default=1000, help="1-1000000 (default 1000)")
    p.add_argument("--named", action="store_true", help="list the official B0-B7 variants instead")
    p.add_argument("--show-arch", action="store_true", help="print each variant's arch string")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nas_harness.errors import ConfigError
    from nas_harness.flops import count_macs, count_params
    from nas_harness.presets import NAMED_VARIANTS, efficientnet, resolve_arch
    from nas_harness.scaling import DEFAULT_ALPHA, DEFAULT_BETA, DEFAULT_GAMMA, compound

    given = [f"--{k}" for k in ("phi", "alpha", "beta", "gamma", "resolution") if getattr(args, k) is not None]
    if args.named and given:
        raise ConfigError(f"{given[0]}: has no effect with --named (the official B0-B7 use their published "
                          "coefficients and resolutions); drop one of them")
    for key, default in (("phi", [0, 1, 2, 3, 4, 5, 6, 7]), ("alpha", DEFAULT_ALPHA), ("beta", DEFAULT_BETA),
                         ("gamma", DEFAULT_GAMMA), ("resolution", 224)):
        if getattr(args, key) is None:
            setattr(args, key, default)
    if args.named:
        variants = [efficientnet(n) for n in NAMED_VARIANTS]
    else:
        base = resolve_arch(args.arch)
        check_arch_size(base, "arch")
        variants = []
        for phi in args.phi:  # scaling is arithmetic; counting is what a huge result would make slow
            v = compound(base, phi, args.alpha, args.beta, args.gamma, args.resolution)
            check_arch_size(v.arch, f"--phi {phi:g} (alpha={args.alpha:g}, beta={args.beta:g}, "
                                    f"gamma={args.gamma:g})", v.resolution)
            variants.append(v)
        print(f"alpha={args.alpha:g} beta={args.beta:g} gamma={args.gamma:g}  "
              f"(alpha*beta^2*gamma^2 = {args.alpha * args.beta**2 * args.gamma**2:.3f})")
    rows = []
    for v in variants:
        p = count_params(v.arch, args.num_classes)
        m = count_macs(v.arch, v.resolution, args.num_classes).total
        rows.append([v.name, f"{v.width:.3f}", f"{v.depth:.3f}", v.resolution, f"{p:,} ({human(p)})",
                     f"{m:,} ({human(m)})"])
    print(table(["variant", "width", "depth", "res", "params", "MACs"], rows))
    if args.show_arch:
        for v in variants:
            print(f"{v.name}: {v.arch}")
    return 0

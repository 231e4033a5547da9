"""``nas-harness export``: a chosen arch of a study as arch string, JSON spec and a ready builder call."""

from __future__ import annotations

import argparse
from pathlib import Path

from nas_harness.cli._checks import integer, number, text
from nas_harness.cli._format import add_study_source
from nas_harness.errors import ConfigError


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="export a study's chosen arch (string, JSON spec, build_model call, family)",
                       description="Pick the RANK-th best completed full-budget search trial (or --trial N) and "
                                   "write <out>/rank<R>_<ranking>.arch, .json and _build.py (trial<N>.* for --trial; "
                                   "default out: <study>/export), e.g. rank1_pareto.arch: each ranking has its own "
                                   "files.")
    add_study_source(p)
    p.add_argument("--rank", type=integer(1, 1_000_000), default=1, help="1 = best (default)")
    p.add_argument("--trial", type=integer(0, 10**9), help="export this trial number instead of a rank")
    p.add_argument("--by", default="auto", choices=["auto", "pareto", "val_acc", "reward", "test_acc"],
                   help="ranking: auto = reward for reward studies, Pareto front (most accurate first) for "
                        "multi-objective ones, val_acc otherwise")
    p.add_argument("--family", type=number(0, 10), nargs="+", metavar="PHI",
                   help="also list the compound-scaled family at these phi values in [0, 10], e.g. --family 1 2 3, "
                        "with MACs/params of the deployed network as `nas-harness scale` counts them")
    p.add_argument("--base-resolution", type=integer(8, 4096), default=224,
                   help="resolution of phi=0 for --family, 8-4096 (default 224)")
    p.add_argument("--num-classes", type=integer(1, 1_000_000),
                   help="classifier size of the builder call (default: the study's)")
    p.add_argument("--in-channels", type=integer(1, 1024),
                   help="input channels of the builder call (default: the study's)")
    p.add_argument("--out", type=text(), help="output folder (default: <study folder>/export)")
    p.add_argument("--weights", type=text(), metavar="FILE.pt",
                   help="supernet studies: also write the arch's inherited weights (BatchNorm re-estimated) as a "
                        "state dict that build_model(arch, num_classes, in_channels, stem_stride) loads (a new "
                        "file: an existing one is never replaced)")
    p.add_argument("--finetune", type=number(0, 100_000), default=0.0, metavar="EPOCHS",
                   help="with --weights: fine-tune the inherited weights this many epochs with the study's recipe "
                        "first (default 0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nas_harness.cli._checks import check_arch_size, check_dir_writable, keep, output_dir
    from nas_harness.results import export_arch, resolve_source, study_frame

    src = resolve_source(args.study, args.study_name)
    out = Path(args.out) if args.out else src.out_dir / "export"
    check_dir_writable(out, "--out")
    df = study_frame(src)
    pick = dict(rank=args.rank, trial=args.trial, by=args.by, num_classes=args.num_classes,
                in_channels=args.in_channels, base_resolution=args.base_resolution)
    if args.finetune and not args.weights:
        raise ConfigError("--finetune: applies with --weights only")
    weights = Path(args.weights) if args.weights else None
    if weights is not None:
        check_dir_writable(weights.parent, "--weights")
        if weights.exists() or weights.is_symlink():  # another arch's (or the fine-tuned) weights: never replaced
            raise ConfigError(f"--weights: {str(weights)!r} exists already (weights an earlier export wrote?) and is "
                              "not replaced; name a new file or remove it first")
        evaluator = _study_evaluator(src)
    if args.family:  # the family is counted: first check the stored arch is one the counter is meant for
        check_arch_size(export_arch(df, **pick).arch, "the study's arch")
    exp = export_arch(df, family=args.family, **pick)
    stem = exp.stem  # rank<R>_<ranking> or trial<N>: another ranking's files are never replaced
    keep(args, writing=out, kept=f"the study in {src.label} is unchanged (export only reads it); the export "
                                 "files written so far were removed")
    with output_dir(out, "--out"):
        paths = exp.write(out, stem)
    print(exp.header)
    print(f"# {exp.params_note}")
    print(exp.arch_string)
    print()
    print(exp.builder_code())
    if exp.family:
        first = exp.family[0]
        print(f"# compound-scaled family (phi, resolution, width, depth, MMACs, params, arch), counted for the "
              f"deployed network ({first['macs_num_classes']:,} classes, {first['macs_in_channels']} input "
              "channels) as the study's records and `nas-harness scale` are")
        for f in exp.family:
            print(f"phi={f['phi']:g}  {f['resolution']}px  w={f['width']:.3f}  d={f['depth']:.3f}  "
                  f"{f['macs'] / 1e6:.2f} MMACs  {f['params']:,} params  {f['arch']}")
        print()
    for p in paths:
        print(p)
    if weights is not None:
        info = evaluator.export(exp.arch, weights, float(args.finetune))
        tuned = f", fine-tuned {args.finetune:g} epochs (val_acc {info['finetuned_val_acc']:.2%})" \
            if args.finetune else ""
        print(f"{weights}  (inherited weights of supernet {info['supernet_id']}{tuned}; load with "
              f"build_model(arch, num_classes={info['num_classes']}, in_channels={info['in_channels']}, "
              f"stem_stride={info['stem_stride']}))")
    return 0


def _study_evaluator(src: object):
    """The supernet evaluator of a stored supernet study (ConfigError for a study of another evaluator)."""
    from nas_harness.evaluation.recipe import study_evaluator, study_recipe
    from nas_harness.evaluators import EvalContext, EvaluatorConfig
    from nas_harness.results import load_study
    from nas_harness.study.config import validate

    study = load_study(src)
    kind = study_evaluator(study)
    if kind != "supernet":
        raise ConfigError(f"--weights: the study's trials were scored by evaluator {kind!r}, not 'supernet'; only a "
                          "supernet study has weights to export (retrain the arch with `nas-harness confirm`)")
    recipe = study_recipe(study)
    cfg = validate(study.user_attrs["config"])
    ctx = EvalContext(space=cfg.search_space(), data=recipe.data, train=recipe.train, trial=recipe.trial,
                      seed=recipe.seed, study_dir=src.folder)  # type: ignore[attr-defined]
    return EvaluatorConfig(**cfg.evaluator.to_dict()).make(ctx)

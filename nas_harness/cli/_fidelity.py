"""``nas-harness fidelity RESULTS_DIR``: retrain some search archs at a higher fidelity and measure how well
the search's proxy (and each cheap predictor) ranked them.

Writes ``fidelity.json``, ``fidelity.md``, ``fidelity_archs.csv`` and ``fidelity.{png,svg}`` into the results
folder; re-running the same command resumes.
"""

from __future__ import annotations

import argparse

from nas_harness.cli._checks import integer, number, text
from nas_harness.cli._confirm import add_run_flags, ray_config
from nas_harness.cli._format import add_study_source, finish_evaluation
from nas_harness.cli._track import evaluation_tracking

_OVERRIDES = {  # flag attribute -> [fidelity] key
    "top": "top",
    "random": "random",
    "seeds": "seeds",
    "seed": "seed",
    "against": "against",
    "factor": "epochs_factor",
    "epochs": "train.epochs",
    "steps": "train.steps",
    "train_subset": "data.train_subset",
    "val_size": "data.val_size",
    "resolution": "data.resolution",
    "name": "name",
    "stratify": "stratify",
}


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="how well did the search's proxy rank archs? (retrain at a higher fidelity)",
                       description="Retrain the proxy's top-K archs and K random others at a higher-fidelity recipe "
                                   "(the [fidelity] table of --config FILE, or flags; default: 5x the search's "
                                   "epochs) and report Kendall tau and Spearman rho with bootstrap 95% intervals, "
                                   "top-K recall and regret, for the proxy and for params, MACs and training-free "
                                   "scores. Re-running resumes.")
    add_study_source(p)
    p.add_argument("--config", metavar="FILE", type=text(),
                   help="TOML file with a [fidelity] table (flags override it)")
    p.add_argument("--top", type=integer(1, 1000), help="the proxy's best K archs (default 4)")
    p.add_argument("--random", type=integer(0, 1000), help="K more archs drawn at random (default 4)")
    p.add_argument("--seeds", type=integer(1, 100), help="high-fidelity runs per arch (default 1)")
    p.add_argument("--seed", type=integer(0, 2**32 - 1), help="seed of the random draw and the bootstrap")
    p.add_argument("--epochs", type=number(1e-6, 1e5), help="high-fidelity epochs (fidelity.train.epochs)")
    p.add_argument("--steps", type=integer(1, 10**9), help="high-fidelity steps (fidelity.train.steps)")
    p.add_argument("--factor", type=number(1, 1000),
                   help="multiply the search's budget (fidelity.epochs_factor; default 5 when nothing else is given)")
    p.add_argument("--train-subset", type=integer(1, 10**9), help="fidelity.data.train_subset")
    p.add_argument("--val-size", type=integer(1, 10**9), help="fidelity.data.val_size")
    p.add_argument("--resolution", type=integer(8, 1024), help="fidelity.data.resolution")
    p.add_argument("--references", action="store_true", default=None, help="also retrain the reference archs")
    p.add_argument("--test", action="store_true", default=None, help="also measure the test split (reported only)")
    p.add_argument("--no-zero-cost", action="store_true", help="skip the training-free predictors")
    p.add_argument("--against", type=text(64), metavar="KIND",
                   help="the high-fidelity side's evaluator: train (from scratch, the default) or another kind, "
                        "e.g. 'table' (the Accel-NASBench ImageNet accuracies of the study's archs; the study must "
                        "search its space); other kinds' options go in the --config file's [fidelity.options]")
    p.add_argument("--stratify", choices=["auto", "macs", "none"],
                   help="draw the random archs stratified by MACs (auto = for studies not scored by training, "
                        "e.g. a supernet study; the default)")
    p.add_argument("--name", type=text(64),
                   help="store the runs as study <study>-<name> (default fidelity; one per recipe)")
    add_run_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nas_harness.errors import ConfigError
    from nas_harness.evaluation.fidelity import load_fidelity, markdown, run_fidelity

    overrides = {key: getattr(args, attr) for attr, key in _OVERRIDES.items()}
    overrides["references"] = args.references
    overrides["evaluate_test"] = args.test
    if args.no_zero_cost:
        overrides["zero_cost"] = False
    if args.epochs is not None and args.steps is not None:
        raise ConfigError("--epochs and --steps are mutually exclusive; give one")
    if (args.epochs is not None or args.steps is not None) and args.factor is not None:
        raise ConfigError("--factor has no effect with --epochs/--steps; give one")
    cfg = load_fidelity(args.config, overrides)
    tracking, on_record = evaluation_tracking(args, "fidelity", cfg.name)
    res = run_fidelity(args.study, cfg, study_name=args.study_name, out_dir=args.out, backend=args.backend,
                       workers=args.workers,
                       ray=ray_config(args), retry_failed=args.retry_failed, progress=not args.no_progress,
                       figure=not args.no_figure, report_only=args.report_only, on_record=on_record)
    tracking.artifacts(res.outputs)
    tracking.close()
    return finish_evaluation(markdown(res), res.outputs, res.failed, "fidelity.md")

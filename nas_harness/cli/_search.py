"""``nas-harness search STUDY.toml``: run or continue a search study (local or Ray), or its scaling search.

The study file is validated (flags applied first) before anything runs or is written; a bad file or flag
exits 2 with one line naming the key.  Re-running the same command continues the study.
"""

from __future__ import annotations

import argparse
import sys

from nas_harness.cli._checks import (
    check_arch_size,
    check_dir_writable,
    config_flag,
    keep,
    storage_file,
    study_name,
    text,
)
from nas_harness.cli._track import add_tracking_flags

_STUDY = "nas_harness.study.config:StudyConfig"
_RUN = "nas_harness.study.config:StudyRun"
_RAY = "nas_harness.study.config:StudyRay"
_TRAIN = "nas_harness.train.config:TrainConfig"

_OVERRIDES = {  # flag attribute -> study-file key path
    "n_trials": "run.n_trials",
    "workers": "run.workers",
    "timeout": "run.timeout_s",
    "backend": "run.backend",
    "storage": "run.storage",
    "seed": "seed",
    "cpus_per_trial": "ray.cpus_per_trial",
    "gpus_per_trial": "ray.gpus_per_trial",
    "max_concurrent": "ray.max_concurrent",
    "ray_address": "ray.address",
    "results_dir": "run.results_dir",
    "device": "train.device",
}


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="run or continue an architecture search study (studies/*.toml)",
                       description="Run the study described by a TOML file; re-running continues it. "
                                   "Flags override the file's values.")
    p.add_argument("study", metavar="STUDY.toml", type=text(), help="study file, e.g. studies/quickstart.toml")
    p.add_argument("--n-trials", type=config_flag(_RUN, "n_trials"),
                   help="total finished trials the study should reach, 1-1000000 (run.n_trials)")
    p.add_argument("--timeout", type=config_flag(_RUN, "timeout_s"),
                   help="stop starting new trials after this many seconds, 0-1e8 (run.timeout_s)")
    p.add_argument("--workers", type=config_flag(_RUN, "workers"),
                   help="local backend: trials at once, each a process on the same study (run.workers; default: the "
                        "cores divided by the threads per trial; a larger request, or one above the trials to go, is "
                        "cut to fit with a note)")
    p.add_argument("--backend", choices=("local", "ray"), help="local or ray (run.backend)")
    p.add_argument("--storage", type=text(),
                   help="Optuna storage URL, e.g. sqlite:///x.db or journal:x.log (run.storage)")
    p.add_argument("--seed", type=config_flag(_STUDY, "seed"),
                   help="seed of the sampler and of every trial's training (seed)")
    p.add_argument("--cpus-per-trial", type=config_flag(_RAY, "cpus_per_trial"),
                   help="Ray: CPUs per trial (ray.cpus_per_trial)")
    p.add_argument("--gpus-per-trial", type=config_flag(_RAY, "gpus_per_trial"),
                   help="Ray: GPUs per trial, fractional ok (ray.gpus_per_trial)")
    p.add_argument("--max-concurrent", type=config_flag(_RAY, "max_concurrent"),
                   help="Ray: concurrent trials, 0 = as resources allow")
    p.add_argument("--ray-address", type=text(1024),
                   help="Ray: join this cluster (default $RAY_ADDRESS or a local Ray)")
    p.add_argument("--results-dir", type=text(), help="parent folder of results/<study> (run.results_dir)")
    p.add_argument("--device", type=config_flag(_TRAIN, "device"),
                   help="train on this device: auto, cpu, cuda, cuda:N (train.device); one local worker per GPU of a "
                        "machine: start one with --device cuda:0, one with cuda:1, ... on the same study")
    add_tracking_flags(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-plots", action="store_true", help="do not write figures at the end")
    p.add_argument("--check", action="store_true",
                   help="validate the study file (data, folders, storage, resources) and print a one-line verdict; "
                        "run nothing")
    p.add_argument("--show-config", action="store_true",
                   help="with --check: also print the resolved study file (every default filled in) as JSON")
    p.add_argument("--scaling", action="store_true",
                   help="compound-scaling search instead: grid over alpha, beta, gamma ([scaling] table)")
    p.add_argument("--base", type=text(10_000),
                   help="with --scaling: base arch (b0..b7, arch string or file; default: the study's)")
    p.add_argument("--fork", metavar="NEW_NAME", type=study_name,
                   help="start study NEW_NAME with this file's settings, re-evaluating the finished archs of the "
                        "study named in the file first (for a changed recipe, space or objective)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from nas_harness.study.config import load_study
    from nas_harness.tracking import tracking_overrides

    overrides = {key: getattr(args, attr) for attr, key in _OVERRIDES.items()}
    overrides.update(tracking_overrides(args.mlflow, args.tensorboard))
    if args.no_progress:
        overrides["run.progress"] = False
    if args.no_plots:
        overrides["run.plots"] = False
    cfg = load_study(args.study, overrides)
    if args.show_config and not args.check:
        from nas_harness.errors import ConfigError

        raise ConfigError("--show-config: only with --check (it prints the resolved study file instead of running)")
    from nas_harness.presets import resolve_arch

    check_arch_size(resolve_arch(cfg.base), "base")  # what `info` refuses as too large is refused here too
    check_arch_size(cfg.base_arch(), "base (scaled by base_width/base_depth)")
    if args.check:
        from nas_harness.study.search import check_continued_trials, check_study

        check_study(cfg)  # data, folders, storage, resources: what a real run checks before it writes
        check_continued_trials(cfg)  # the stored trials of a study it would continue, read-only
        if args.show_config:
            print(json.dumps(cfg.to_dict(), indent=2, default=str))
        print(f"ok: {args.study} is a valid study ({cfg.search_space().size:.3g} archs in the space)",
              file=sys.stderr)
        return 0
    _check_outputs(cfg)
    keep(args, storage=storage_file(cfg.storage_url), kept=lambda: _kept(cfg), writing=cfg.study_dir)
    if args.scaling:
        return _run_scaling(cfg, args.base)
    from nas_harness.study.search import fork_study, run_search

    if args.fork:
        cfg = fork_study(cfg, args.fork)
        keep(args, kept=lambda: _kept(cfg))
    summary = run_search(cfg)
    rejected = f", {summary.n_rejected} rejected over budget" if summary.n_rejected else ""
    print(f"study {summary.study_name}: {summary.n_complete} complete, {summary.n_pruned} pruned{rejected}, "
          f"{summary.n_fail} failed; storage {summary.storage}")
    for b in summary.best[:10]:
        print(best_line(b, cfg.objective.cost_key))
    for path in summary.outputs:
        print(f"  wrote {path}")
    if summary.stop_reason:
        print(summary.stop_reason)
    if summary.interrupted:
        from nas_harness.errors import interrupt_exit_code

        return interrupt_exit_code()  # 130 for Ctrl-C, 143 for SIGTERM
    if summary.ran and summary.n_complete == 0 and summary.n_pruned == 0 and summary.n_rejected == 0:
        print("error: every trial failed (see fail_reason above)", file=sys.stderr)
        return 1
    if summary.stopped_by_failures:
        return 1
    return 0


def best_line(best: dict, cost: str) -> str:
    """One best trial of the end summary, with the study's cost (``cost``: its trial-record key, ``macs``,
    ``params``, ``latency_ms`` or a benchmark table's): ``  best #2 [base]: val_acc=0.3820 params=473,210
    reward=0.39  ARCH``."""
    from nas_harness.objectives import MS_COSTS

    value = best.get(cost)
    if value is None and cost not in ("macs", "params", "latency_ms") and len(best.get("values") or []) == 2:
        value = best["values"][1]  # a benchmark table's cost: the multi objective's second value
    if value is None:
        shown = f" {cost}=n/a"
    elif cost == "latency_ms":
        shown = f" latency={value:.3g}ms"
    elif cost in MS_COSTS:
        shown = f" {cost}={value:.3g}"
    else:
        shown = f" {cost}={int(value):,}"
    extra = f" reward={best['reward']:.4f}" if "reward" in best else ""
    ref = f" [{best['reference']}]" if "reference" in best else ""
    acc = best["val_acc"] if best.get("val_acc") is not None else float("nan")
    return f"  best #{best['number']}{ref}: val_acc={acc:.4f}{shown}{extra}  {best['arch']}"


def _check_outputs(cfg) -> None:
    """Refuse a results folder or storage that cannot be written before anything is created."""
    from nas_harness.cli._checks import refuse_special_outputs
    from nas_harness.records import check_writable

    check_dir_writable(cfg.study_dir, "run.results_dir")
    refuse_special_outputs(cfg.study_dir, "run.results_dir")  # trials.csv, figures/: a FIFO there would block
    check_writable(cfg.storage_url)


def _kept(cfg) -> str:
    """What survives a failure mid-run (a full disk): the finished trials in the storage."""
    from nas_harness.cli._checks import kept_in_storage

    return kept_in_storage(cfg.storage_url, cfg.name, "trial")



def _run_scaling(cfg, base_text: str | None) -> int:
    from nas_harness.presets import resolve_arch
    from nas_harness.study.scaling_search import run_scaling_search

    base = resolve_arch(base_text) if base_text else None
    if base is not None:
        check_arch_size(base, "--base")
    summary = run_scaling_search(cfg, base)
    groups = summary.groups
    print(f"scaling study {summary.study_name}: {len(summary.rows)}/{summary.triples} triples trained, "
          f"{len(groups)} distinct network(s) (triples that round to the same network are one result)")
    for g in groups[:10]:
        same = f" (+{len(g.members) - 1} same network: " + ", ".join(
            f"{a:g}/{b:g}/{c:g}" for a, b, c in g.members[1:4]) + (", ..." if len(g.members) > 4 else "") + ")" \
            if len(g.members) > 1 else ""
        ci = f" [{100 * g.ci_low:.1f}, {100 * g.ci_high:.1f}]" if g.ci_low == g.ci_low else ""
        tie = "  tied with #1 within noise" if g.tied_with_best and g.rank > 1 else ""
        a, b, c = g.members[0]
        print(f"  #{g.rank} alpha={a:g} beta={b:g} gamma={c:g}{same}  val_acc={100 * g.val_acc:.2f}%{ci}  "
              f"res={g.resolution} macs={int(g.macs or 0):,}{tie}")
    if groups:
        a, b, c = groups[0].members[0]
        tied = [g for g in groups[1:] if g.tied_with_best]
        if tied:
            n = groups[0].val_n
            print(f"best triple: none is decided: {len(tied) + 1} networks are tied within noise "
                  f"(Wilson 95% intervals on {n or '?'} validation images, one seed each); to rank them over "
                  f"seeds: nas-harness confirm {cfg.study_dir} --scaling --top {min(len(tied) + 1, 5)} --seeds 3")
            print(f"highest point estimate: alpha={a:g} beta={b:g} gamma={c:g}")
        else:
            print(f"best triple: alpha={a:g} beta={b:g} gamma={c:g} (ahead of every other network beyond noise)")
    if summary.interrupted:
        from nas_harness.errors import interrupt_exit_code, interrupt_name

        print(f"stopped: interrupted ({interrupt_name()}) with {len(summary.rows)} of {summary.triples} triples "
              "trained; run the same command to continue")
        return interrupt_exit_code()
    return 0

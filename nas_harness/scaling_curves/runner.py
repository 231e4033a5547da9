"""Train every (network, seed) of a scaling-curves file, durably, through the job runner the ablations use.

Storage: an Optuna study (SQLite ``results/<name>/curves.db`` by default) holding one trial per finished
(network, seed) run -- a :class:`~nas_harness.evaluation.store.JobStore`: one transaction per finished run
(a SIGKILL leaves the whole record or nothing), per-epoch checkpoints under ``<results>/<name>/checkpoints/``,
a changed recipe refused.  A network that lies on several curves (the base is on every single-dimension curve,
phi = 0 is the base) is trained once per seed.  Jobs run through :func:`nas_harness.evaluation.store.
run_stored_jobs` -> :func:`nas_harness.backends.run_jobs` (local or one Ray task each) ->
:func:`nas_harness.trial.run_trial`, the same trial code as the search.  Every seed runs every network with the
same data subset and data order (seed s = the same training seed everywhere): the curves are paired.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nas_harness.backends.settings import fixed_jobs_threads, stored_settings
from nas_harness.errors import ConfigError
from nas_harness.evaluation.store import JobStore, StoredRun, run_stored_jobs

from .config import CurvePoint, ScalingCurvesConfig

__all__ = ["CurvesRun", "CurvesStore", "load_records", "network_macs", "plan_jobs", "run_curves", "variant_spec"]


class CurvesStore(JobStore):
    """The durable record of a scaling-curves file: groups are networks (user attribute ``network``: training
    px, deployed-count px and arch string), the trial value is the test accuracy (else validation)."""

    def __init__(self, url: str, name: str) -> None:
        super().__init__(url, name, group_attr="network", value_keys=("test_acc", "val_acc"))

    def bind(self, cfg: ScalingCurvesConfig) -> Any:  # type: ignore[override]
        """Check that stored runs were made with ``cfg``'s recipe; record it if new.  Returns the training recipe
        to use (``cfg.train`` with the thread count fixed for this file)."""
        stored = self.study.user_attrs.get("recipe")
        threads = cfg.train.threads
        if threads is None:
            stored_threads = ((stored or {}).get("train") or {}).get("threads") if isinstance(stored, dict) else None
            threads = stored_threads if stored_threads is not None else fixed_jobs_threads(cfg)
        train = cfg.train.replace(threads=threads)
        super().bind(cfg.replace_train(train).recipe(), {k: str(p.arch) for k, p in cfg.networks().items()},
                     kind="scaling_curves", attrs={"config": stored_settings(cfg)}, what="runs of scaling curves",
                     data=cfg.data)
        return train




def plan_jobs(cfg: ScalingCurvesConfig) -> list[tuple[str, int]]:
    """All (network, seed) pairs, seed-major: an interrupted run has whole seeds to pair."""
    nets = list(cfg.networks())
    return [(k, s) for s in cfg.seeds for k in nets]


def network_macs(cfg: ScalingCurvesConfig, point: CurvePoint, num_classes: int) -> dict[str, int]:
    """MACs of a point in both conventions (:mod:`nas_harness.flops`, 1 MAC = 1 flop): ``deployed`` = the arch
    at ``macs_resolution`` px (trial.macs_resolution x r) with ``trial.macs_num_classes`` classes (default
    1000), 3-channel input and its own stem (what ``nas-harness scale`` prints); ``proxy`` = the trained
    network at its training resolution with the data's ``num_classes`` and channels and the trial's stem
    stride.  ``params`` are the deployed network's."""
    from nas_harness.flops import count_macs, count_params

    t = cfg.trial
    classes = t.macs_num_classes or num_classes
    return {"deployed": count_macs(point.arch, point.macs_resolution, classes).total,
            "proxy": count_macs(point.arch, point.resolution, num_classes, in_channels=cfg.data.channels,
                                stem_stride=t.stem_stride).total,
            "params": count_params(point.arch, classes)}


def variant_spec(cfg: ScalingCurvesConfig, point: CurvePoint, seed: int, train: Any, num_classes: int) -> Any:
    """The :class:`~nas_harness.trial.TrialSpec` of one (network, seed): the data at the point's resolution
    (always resized), the training seed ``seed``, MACs counted at the point's deployed resolution."""
    from nas_harness.trial import TrialSpec

    t = cfg.trial
    data = cfg.data.replace(resolution=point.resolution, fit="resize")
    return TrialSpec(arch=point.arch, data=data, train=train.replace(seed=seed), seed=seed,
                     stem_stride=t.stem_stride, macs_resolution=point.macs_resolution,
                     macs_num_classes=t.macs_num_classes or num_classes, evaluate_test=t.evaluate_test)


@dataclass
class CurvesRun:
    """What :func:`run_curves` did: every stored record of the planned (network, seed) pairs and what ran."""

    config: ScalingCurvesConfig
    records: list[StoredRun]
    ran: list[tuple[str, int]]
    skipped: list[tuple[str, int]]
    wall_s: float

    @property
    def failed(self) -> list[StoredRun]:
        return [r for r in self.records if r.state != "ok"]


def run_curves(cfg: ScalingCurvesConfig, *, retry_failed: bool = False, progress: bool = True,
               on_record: Callable[[StoredRun], None] | None = None,
               log: Callable[[str], None] | None = None) -> CurvesRun:
    """Run the (network, seed) pairs of ``cfg`` not stored yet; return every stored record of the plan.

    ``on_record`` is called after each run is durably stored.  ``KeyboardInterrupt`` propagates; everything
    finished before it is kept.
    """
    from nas_harness.backends.resources import check_resources
    from nas_harness.data import load_proxy
    from nas_harness.records import check_writable

    say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    t0 = time.perf_counter()
    num_classes = load_proxy(cfg.data).num_classes  # a missing data set is one line before anything is written
    check_writable(cfg.storage_url)
    check_resources(cfg)
    store = CurvesStore(cfg.storage_url, cfg.name)
    train = store.bind(cfg)
    nets = cfg.networks()
    plan = plan_jobs(cfg)
    done = store.records()
    n_stored = sum(1 for p in plan if p in done and (done[p].state == "ok" or not retry_failed))
    say(f"scaling curves {cfg.name}: {len(cfg.points)} points on {len(cfg.curve_names())} curves = {len(nets)} "
        f"distinct networks x {len(cfg.seeds)} seeds = {len(plan)} runs; {n_stored} already stored, "
        f"{len(plan) - n_stored} to run ({cfg.run.backend} backend, {train.threads} thread(s) per run); "
        f"storage {store.path}")
    names = {k: f"{p.curve} {p.label} ({p.resolution} px)" for k, p in nets.items()}

    metric = "test_acc" if cfg.trial.evaluate_test else "val_acc"

    def describe(run: StoredRun) -> str:
        m = run.metrics
        if run.state != "ok":
            return f"{names[run.group]} seed {run.seed}: FAILED: {run.error}"
        return (f"{names[run.group]} seed {run.seed}: {metric[:-4]} {m.get(metric) or float('nan'):.4f} "
                f"({m.get('train_time_s') or 0.0:.0f} s train)")

    def make_jobs(todo: list[tuple[str, int]]) -> list[Any]:
        from nas_harness.backends import Job

        return [Job(key=f"{names[k]}/seed{s}", spec=variant_spec(cfg, nets[k], s, train, num_classes))
                for k, s in todo]

    macs = {k: network_macs(cfg, p, num_classes) for k, p in nets.items()}
    epochs = cfg.train.epochs
    out = run_stored_jobs(
        store, plan, make_jobs, backend=cfg.run.backend, ray=cfg.ray, retry_failed=retry_failed,
        progress=progress, desc=cfg.name, checkpoint_dir=cfg.out_dir / "checkpoints",
        budget=f"/{epochs:g}" if epochs is not None else "", describe=describe, on_record=on_record,
        extra=lambda key: {"resolution": nets[key[0]].resolution, "proxy_macs": macs[key[0]]["proxy"]}, log=say,
        workers=cfg.run.workers)
    return CurvesRun(cfg, out.runs, out.ran, out.skipped, time.perf_counter() - t0)


def load_records(cfg: ScalingCurvesConfig) -> list[StoredRun]:
    """Stored records of ``cfg``'s planned pairs (for re-reporting without running)."""
    from nas_harness.records import redact
    from nas_harness.records._storage import sqlite_path

    path = sqlite_path(cfg.storage_url)
    if path is not None and not path.is_file():
        raise ConfigError(f"run.storage: {redact(cfg.storage_url)} does not exist (nothing has been run yet)")
    final = CurvesStore(cfg.storage_url, cfg.name).records()
    return [final[p] for p in plan_jobs(cfg) if p in final]

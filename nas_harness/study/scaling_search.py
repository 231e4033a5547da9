"""Compound-scaling search (EfficientNet's step 1): grid over (alpha, beta, gamma) with
alpha * beta^2 * gamma^2 ~= 2, each triple applied at phi (1 by default) to a base arch and trained on the
proxy at the scaled resolution; the best triple by validation accuracy is reported.

It is an Optuna study of its own (``<name>-scaling`` in the same storage), one enqueued trial per triple,
so it resumes like any study and the results tools can read it.  Triples that round to the same network
(same arch string and training resolution) are one measurement: the summary groups them
(:func:`nas_harness.results.scaling.scaling_groups`), gives each group's validation accuracy its Wilson 95 %
interval, and marks the groups tied within noise with the best; ``nas-harness confirm <results> --scaling``
re-trains the best few groups over seeds.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from nas_harness.errors import ConfigError
from nas_harness.objectives import Objective
from nas_harness.study.config import StudyConfig


def valid_triples(alphas: list[float], betas: list[float], gammas: list[float], tolerance: float,
                  target: float = 2.0) -> list[tuple[float, float, float]]:
    """All (alpha, beta, gamma) with abs(alpha * beta^2 * gamma^2 - target) <= tolerance, sorted."""
    out = sorted({(float(a), float(b), float(g)) for a in alphas for b in betas for g in gammas
                  if abs(a * b * b * g * g - target) <= tolerance})
    if not out:
        raise ConfigError(f"scaling.tolerance: no (alpha, beta, gamma) in the grid has alpha*beta^2*gamma^2 "
                          f"within {tolerance:g} of {target:g}; widen the grid or the tolerance")
    return out


@dataclass
class ScalingSummary:
    study_name: str
    triples: int
    best: dict[str, Any] | None
    rows: list[dict[str, Any]] = field(default_factory=list)
    interrupted: bool = False
    groups: list[Any] = field(default_factory=list)  # nas_harness.results.scaling.ScalingGroup, best first


def run_scaling_search(cfg: StudyConfig, base: Any = None, *, log: Any = None) -> ScalingSummary:
    """Train every valid triple once (resuming a previous run; several workers may share it) and report the
    best by val_acc."""
    import optuna
    from optuna.trial import TrialState

    from nas_harness.records import (
        Heartbeat,
        Outcome,
        StorageLock,
        TrialRecord,
        TrialSlots,
        mark_running,
        open_storage,
        tell,
    )
    from nas_harness.scaling import compound
    from nas_harness.study.search import build_task, open_study, start_tracking

    log = log or (lambda msg: print(msg, file=sys.stderr))
    sc = cfg.scaling
    triples = valid_triples(list(sc.alphas), list(sc.betas), list(sc.gammas), sc.tolerance)
    base = base if base is not None else cfg.base_arch()
    objective = Objective(kind="budget", max_macs=1e15)  # plain accuracy: no budget binds
    name = f"{cfg.name}-scaling"
    scfg = StudyConfig.from_dict({**cfg.to_dict(), "name": name, "objective": objective.to_dict()})
    from nas_harness.data import load_proxy

    load_proxy(cfg.data)
    storage = open_storage(cfg.storage_url)
    cfg.study_dir.mkdir(parents=True, exist_ok=True)
    study, threads = open_study(scfg, storage, optuna.samplers.RandomSampler(seed=cfg.seed), None, log)
    study.set_user_attr("objective", "scaling")
    study.set_user_attr("base_arch", str(base))
    task0 = build_task(scfg, threads, "local")
    candidates = [{"alpha": a, "beta": b, "gamma": g} for a, b, g in triples]
    slots = TrialSlots(study, len(triples), StorageLock(cfg.storage_url),
                       Heartbeat(study._storage, cfg.run.heartbeat_s), candidates=candidates, log=log)
    done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    log(f"scaling search {name!r}: {len(triples)} triples with a*b^2*g^2 ~= 2 (tol {sc.tolerance:g}), "
        f"phi={sc.phi:g}; {done} done")
    choices = {k: sorted({t[i] for t in triples}) for i, k in enumerate(("alpha", "beta", "gamma"))}
    summary = ScalingSummary(name, len(triples), None)
    tracking = start_tracking(scfg, log, cfg.study_dir)
    t0 = time.perf_counter()
    try:
        while True:
            trial = slots.acquire()
            if trial is None:
                break
            a, b, g = (trial.suggest_categorical(k, choices[k]) for k in ("alpha", "beta", "gamma"))
            scaled = compound(base, sc.phi, a, b, g, base_resolution=task0.data.resolution)
            macs_res = int(round(task0.trial.macs_resolution * g ** sc.phi))
            task = dataclasses.replace(task0, data=task0.data.replace(resolution=scaled.resolution),
                                       trial=task0.trial.replace(macs_resolution=macs_res))
            mark_running(study, trial._trial_id, TrialRecord(arch=str(scaled.arch)))
            out = task.evaluate(scaled.arch)
            extra = dict(alpha=a, beta=b, gamma=g, resolution=scaled.resolution, width=scaled.width,
                         depth=scaled.depth, flops_factor=a * b * b * g * g)
            rec: TrialRecord = out.record.with_extra(**extra)
            state = out.state if out.values is not None or out.state != "complete" else "fail"
            told = tell(study, trial._trial_id, Outcome(state, out.values, rec, None))
            slots.release(trial._trial_id)
            if told:
                tracking.trial(study._storage.get_trial(trial._trial_id))
            if out.state == "fail":
                log(f"triple ({a:g}, {b:g}, {g:g}) failed: {rec.fail_reason}")
    except KeyboardInterrupt:
        summary.interrupted = True
        from nas_harness.records import INTERRUPTED

        slots.abandon(f"{INTERRUPTED}: stopped by the user (Ctrl-C)")
    finally:
        slots.heartbeat.close()
    from nas_harness.results.scaling import scaling_groups, scaling_rows

    rows = scaling_rows(study)
    summary.rows = sorted(rows, key=lambda r: -r["val_acc"])
    summary.best = summary.rows[0] if summary.rows else None
    summary.groups = scaling_groups(rows)
    tracking.sync(study.get_trials(deepcopy=False))
    tracking.close()
    log(f"scaling search took {time.perf_counter() - t0:.0f} s")
    return summary

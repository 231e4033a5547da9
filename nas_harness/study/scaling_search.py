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

from nas_harness.backends import StudyTask
from nas_harness.errors import ConfigError
from nas_harness.objectives import Objective
from nas_harness.records import Outcome
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


@dataclass(frozen=True)
class Triple:
    """A scaling trial's candidate: (alpha, beta, gamma) and what it gives at the search's phi."""

    alpha: float
    beta: float
    gamma: float
    scaled: Any  # nas_harness.scaling.Scaled

    def extra(self) -> dict[str, Any]:
        s = self.scaled
        return dict(alpha=self.alpha, beta=self.beta, gamma=self.gamma, resolution=s.resolution, width=s.width,
                    depth=s.depth, flops_factor=self.alpha * self.beta ** 2 * self.gamma ** 2)


@dataclass
class ScalingTask(StudyTask):
    """The scaling search's task: a trial proposes a triple, which compound scaling maps to an arch at ``phi``;
    the arch trains on the proxy at the scaled resolution (MACs counted at ``macs_resolution x gamma^phi``)."""

    base: Any = None
    phi: float = 1.0
    choices: dict[str, list[float]] = field(default_factory=dict)

    def propose(self, trial: Any) -> Triple:
        from nas_harness.scaling import compound

        a, b, g = (trial.suggest_categorical(k, self.choices[k]) for k in ("alpha", "beta", "gamma"))
        return Triple(a, b, g, compound(self.base, self.phi, a, b, g, base_resolution=self.data.resolution))

    def arch_of(self, candidate: Triple) -> Any:
        return candidate.scaled.arch

    def evaluate(self, candidate: Triple, on_epoch: Any = None) -> Outcome:
        """Train the triple's arch (no per-epoch pruning: every triple is trained to the end)."""
        macs_res = int(round(self.trial.macs_resolution * candidate.gamma ** self.phi))
        task = StudyTask(**{f.name: getattr(self, f.name) for f in dataclasses.fields(StudyTask)})
        task = dataclasses.replace(task, data=self.data.replace(resolution=candidate.scaled.resolution),
                                   trial=self.trial.replace(macs_resolution=macs_res))
        out = task.evaluate(candidate.scaled.arch)
        rec = out.record.with_extra(**candidate.extra())
        state = out.state if out.values is not None or out.state != "complete" else "fail"
        return Outcome(state, out.values, rec, out.constraints)


def scaling_objective(stored: dict[str, Any] | None) -> Objective:
    """Plain accuracy; a scaling study made before that objective existed keeps its fake budget that never binds
    (``budget``, max_macs 1e15), so its comparability record and fingerprint are unchanged."""
    legacy = Objective(kind="budget", max_macs=1e15)
    if isinstance(stored, dict) and stored.get("objective", {}).get("kind") == "budget":
        return legacy
    return Objective(kind="accuracy")


def run_scaling_search(cfg: StudyConfig, base: Any = None, *, log: Any = None) -> ScalingSummary:
    """Train every valid triple once (resuming a previous run; several workers may share it) and report the
    best by val_acc."""
    import optuna
    from optuna.trial import TrialState

    from nas_harness.backends import TrialLoop
    from nas_harness.records import Heartbeat, StorageLock, TrialSlots, open_storage, set_study_attrs
    from nas_harness.study.search import build_task, open_study, start_tracking

    log = log or (lambda msg: print(msg, file=sys.stderr))
    sc = cfg.scaling
    triples = valid_triples(list(sc.alphas), list(sc.betas), list(sc.gammas), sc.tolerance)
    base = base if base is not None else cfg.base_arch()
    name = f"{cfg.name}-scaling"
    from nas_harness.data import load_proxy

    load_proxy(cfg.data)
    storage = open_storage(cfg.storage_url)
    stored = None
    if name in optuna.get_all_study_names(storage):
        stored = optuna.load_study(study_name=name, storage=storage).user_attrs.get("comparable")
    objective = scaling_objective(stored)
    scfg = StudyConfig.from_dict({**cfg.to_dict(), "name": name, "objective": objective.to_dict()})
    cfg.study_dir.mkdir(parents=True, exist_ok=True)
    study, threads = open_study(scfg, storage, optuna.samplers.RandomSampler(seed=cfg.seed), None, log)
    set_study_attrs(study, objective="scaling", base_arch=str(base))
    choices = {k: sorted({t[i] for t in triples}) for i, k in enumerate(("alpha", "beta", "gamma"))}
    task0 = build_task(scfg, threads, "local")
    task = ScalingTask(**{f.name: getattr(task0, f.name) for f in dataclasses.fields(StudyTask)}, base=base,
                       phi=sc.phi, choices=choices)
    candidates = [{"alpha": a, "beta": b, "gamma": g} for a, b, g in triples]
    slots = TrialSlots(study, len(triples), StorageLock(cfg.storage_url),
                       Heartbeat(study._storage, cfg.run.heartbeat_s), candidates=candidates, log=log)
    done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    log(f"scaling search {name!r}: {len(triples)} triples with a*b^2*g^2 ~= 2 (tol {sc.tolerance:g}), "
        f"phi={sc.phi:g}; {done} done")
    summary = ScalingSummary(name, len(triples), None)
    tracking = start_tracking(scfg, log, cfg.study_dir)
    t0 = time.perf_counter()
    try:
        TrialLoop(study, task, slots, log=log, on_stored=tracking.trial if tracking.active else None).run()
    except KeyboardInterrupt:
        summary.interrupted = True
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

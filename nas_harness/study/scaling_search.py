"""Compound-scaling search (EfficientNet's step 1): grid over (alpha, beta, gamma) with
alpha * beta^2 * gamma^2 ~= 2, each triple applied at phi (1 by default) to a base arch and trained on the
proxy at the scaled resolution; the best triple by validation accuracy is reported.

It is an Optuna study of its own (``<name>-scaling`` in the same storage), one enqueued trial per triple,
so it resumes like any study and the results tools can read it.
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


def run_scaling_search(cfg: StudyConfig, base: Any = None, *, log: Any = None) -> ScalingSummary:
    """Train every valid triple once (resuming a previous run) and report the best by val_acc."""
    import optuna
    from optuna.trial import TrialState

    from nas_harness.backends.local import write_attrs
    from nas_harness.scaling import compound
    from nas_harness.study.search import build_task, open_storage, recover_interrupted

    log = log or (lambda msg: print(msg, file=sys.stderr))
    sc = cfg.scaling
    triples = valid_triples(sc["alphas"], sc["betas"], sc["gammas"], sc["tolerance"])
    base = base if base is not None else cfg.base_arch()
    objective = Objective(kind="budget")  # plain accuracy, no budget
    task0 = build_task(cfg, objective, "local")
    name = f"{cfg.name}-scaling"
    cfg.study_dir.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(storage=open_storage(cfg.storage_url), study_name=name, direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=cfg.seed), load_if_exists=True)
    study.set_user_attr("config", cfg.to_dict())
    study.set_user_attr("objective", "scaling")
    study.set_user_attr("metric_names", ["val_acc"])
    study.set_user_attr("base_arch", str(base))
    recover_interrupted(study)
    done = {(t.params["alpha"], t.params["beta"], t.params["gamma"])
            for t in study.get_trials(deepcopy=False)
            if t.state == TrialState.COMPLETE and "alpha" in t.params}
    waiting = {tuple(t.params.get(k) for k in ("alpha", "beta", "gamma"))
               for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,))}
    todo = [t for t in triples if t not in done]
    for a, b, g in todo:
        if (a, b, g) not in waiting:
            study.enqueue_trial({"alpha": a, "beta": b, "gamma": g})
    n_waiting = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
    log(f"scaling search {name!r}: {len(triples)} triples with a*b^2*g^2 ~= 2 (tol {sc['tolerance']:g}), "
        f"phi={sc['phi']:g}; {len(triples) - len(todo)} done, running {n_waiting}")

    def objective_fn(trial: optuna.Trial) -> float:
        a = trial.suggest_categorical("alpha", sorted({t[0] for t in triples}))
        b = trial.suggest_categorical("beta", sorted({t[1] for t in triples}))
        g = trial.suggest_categorical("gamma", sorted({t[2] for t in triples}))
        scaled = compound(base, sc["phi"], a, b, g, base_resolution=task0.data.resolution)
        macs_res = int(round(task0.macs_resolution * g ** sc["phi"]))
        task = dataclasses.replace(task0, data=dataclasses.replace(task0.data, resolution=scaled.resolution),
                                   macs_resolution=macs_res)
        out = task.evaluate(scaled.arch)
        write_attrs(trial, dict(out.attrs, alpha=a, beta=b, gamma=g, resolution=scaled.resolution,
                                width=scaled.width, depth=scaled.depth, flops_factor=a * b * b * g * g))
        if out.state != "complete" or out.values is None:
            raise RuntimeError(out.attrs.get("fail_reason", "failed"))
        return out.values[0]

    summary = ScalingSummary(name, len(triples), None)
    t0 = time.perf_counter()
    try:
        if n_waiting:
            optuna.logging.set_verbosity(optuna.logging.ERROR)
            study.optimize(objective_fn, n_trials=n_waiting, catch=(Exception,))
    except KeyboardInterrupt:
        summary.interrupted = True
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        ua = t.user_attrs
        summary.rows.append({"alpha": t.params["alpha"], "beta": t.params["beta"], "gamma": t.params["gamma"],
                             "val_acc": t.value, "macs": ua.get("macs"), "resolution": ua.get("resolution")})
    summary.rows.sort(key=lambda r: -r["val_acc"])
    summary.best = summary.rows[0] if summary.rows else None
    log(f"scaling search took {time.perf_counter() - t0:.0f} s")
    return summary

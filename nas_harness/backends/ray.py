"""Ray Tune backend: the same :class:`StudyTask` in Ray workers, with ``OptunaSearch`` bound to the study's
own Optuna storage, so a study can be started locally and continued on Ray (or the other way round).

Pitfalls handled here (ray 2.60 + optuna 5.0):

* ``OptunaSearch`` takes ``metric``/``mode`` itself (lists for multi-objective) and a storage *object*.
* The define-by-run space must be picklable: a ``functools.partial`` of a module-level function.
* ``OptunaSearch`` would tell Optuna a scheduler-stopped trial is COMPLETE with its early value; our
  searcher records the epochs actually trained and tells Optuna PRUNED (``full_budget=False``) instead.
  It also writes the contract's user attributes and records failures with their reason.
* ``reuse_actors=True`` (per-trial overhead ~0.6 s instead of ~4.5 s), results under
  ``results/<study>/ray``, no dashboard, no usage stats, token auth kept in the environment (nothing
  written to the home directory), and the working directory is not changed per trial.
"""

from __future__ import annotations

import functools
import json
import math
import os
import secrets
import sys
from pathlib import Path
from typing import Any

from nas_harness.backends._task import Outcome, StudyTask
from nas_harness.backends.local import write_constraints

_DONE, _STATE, _ATTRS, _VALUES, _CONS = "nas_done", "nas_state", "nas_attrs", "nas_values", "nas_constraints"


def quiet_ray_env(local: bool) -> None:
    """Environment that keeps Ray light and quiet; must be set before ``ray.init`` (workers inherit it)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    if local and "RAY_AUTH_MODE" not in os.environ:
        # Token auth for the private local cluster, with the token only in the environment: Ray would
        # otherwise write ~/.ray/auth_token (or warn that auth is off).
        os.environ["RAY_AUTH_MODE"] = "token"
        os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(16))
        if "ray" in sys.modules:  # Ray reads the mode when imported: make an imported Ray see it too
            try:
                from ray._raylet import AuthenticationTokenLoader, Config

                Config.initialize("")
                AuthenticationTokenLoader.instance().reset_cache()
            except (ImportError, AttributeError):  # pragma: no cover - other Ray versions
                pass
    # Workers must import nas_harness even when it is not pip-installed (running from a checkout).
    root = str(Path(__file__).resolve().parents[2])
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if root not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([root, *paths])


def ensure_ray(address: str | None = None, num_cpus: int | None = None, num_gpus: float | None = None) -> bool:
    """Connect to ``address`` (or ``$RAY_ADDRESS``), or start a quiet local Ray; returns True if started here.

    Reuses an already initialised Ray (e.g. the test session's).
    """
    address = address or os.environ.get("RAY_ADDRESS") or None
    import ray

    if ray.is_initialized():
        return False
    quiet_ray_env(local=address is None)
    # Worker output stays in Ray's session logs: trial errors reach the study as fail_reason anyway.
    kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": "ERROR", "log_to_driver": False,
                              "configure_logging": True}
    if address is None:
        kwargs.update(num_cpus=num_cpus or os.cpu_count() or 1)
        if num_gpus is not None:
            kwargs["num_gpus"] = num_gpus
        ray.init(**kwargs)
    else:
        ray.init(address=address, **kwargs)
    return True


# ---------------------------------------------------------------------------------------------- search
def _define_by_run(trial: Any, space: Any) -> dict[str, Any]:
    """Picklable define-by-run space: every stage choice via the SearchSpace (same param names as local)."""
    space.suggest(trial)
    return {}


def _make_searcher(study: Any, task: StudyTask, sampler: Any) -> Any:
    from ray.tune.search.optuna import OptunaSearch

    class _StudySearch(OptunaSearch):
        """OptunaSearch that records our user attributes and the true outcome of every trial."""

        def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
            if trial_id in self._completed_trials or trial_id not in self._ot_trials:
                return
            from optuna.trial import TrialState

            ot_trial = self._ot_trials[trial_id]
            attrs = json.loads(result[_ATTRS]) if result and _ATTRS in result else {}
            state = result.get(_STATE, "fail") if result else "fail"
            values = None
            if error or not result:
                state = "fail"
                attrs.setdefault("fail_reason", "ray: the trial's worker raised or died (see results/<study>/ray)")
            elif not result.get(_DONE):
                state = "pruned"  # stopped by the scheduler after its last report
                attrs.update(full_budget=False, stopped_by="scheduler")
            elif state == "complete":
                values = json.loads(result[_VALUES])
            for key, value in attrs.items():
                ot_trial.set_user_attr(key, value)
            if state in ("complete", "pruned") and result and result.get(_CONS):
                write_constraints(self._ot_study._storage, ot_trial._trial_id, json.loads(result[_CONS]))
            st = {"complete": TrialState.COMPLETE, "pruned": TrialState.PRUNED}.get(state, TrialState.FAIL)
            self._ot_study.tell(ot_trial, values if st == TrialState.COMPLETE else None, state=st)
            self._completed_trials.add(trial_id)

    metric = task.objective.metric_names
    mode = task.objective.modes
    return _StudySearch(space=functools.partial(_define_by_run, space=task.space),
                        metric=metric if len(metric) > 1 else metric[0], mode=mode if len(mode) > 1 else mode[0],
                        sampler=sampler, study_name=study.study_name, storage=study._storage)


def _result(task: StudyTask, out: Outcome | None, value: float, attrs: dict[str, Any], done: bool) -> dict:
    names = task.objective.metric_names
    if out is not None and out.values is not None:
        metrics = dict(zip(names, out.values))
    else:
        metrics = {n: (value if i == 0 else float(attrs.get(n, 0.0))) for i, n in enumerate(names)}
    metrics = {k: (0.0 if not math.isfinite(v) else float(v)) for k, v in metrics.items()}
    metrics.update({_DONE: done, _STATE: out.state if out else "running", _ATTRS: json.dumps(attrs),
                    "epoch": float(attrs.get("epochs", 0.0))})
    if out is not None and out.values is not None:
        metrics[_VALUES] = json.dumps(out.values)
    if out is not None and out.constraints is not None:
        metrics[_CONS] = json.dumps(out.constraints)
    return metrics


def _trainable(config: dict[str, Any], task: StudyTask) -> None:
    """Ray Tune function trainable (module level, so it pickles): evaluate one candidate, report per epoch."""
    from ray import tune

    try:
        import torch

        torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1") or 1)))
    except (ImportError, ValueError):
        pass
    arch = task.space.arch_from_params(config)

    def on_epoch(value: float, epoch: int, live: dict[str, Any]) -> None:
        tune.report(_result(task, None, value, live, done=False))

    out = task.evaluate(arch, on_epoch)
    tune.report(_result(task, out, 0.0, out.attrs, done=True))


def _progress_callback(study: Any, progress: Any) -> Any:
    """A Tune callback that refreshes the study progress bar as trials finish."""
    from ray.tune import Callback

    class _Progress(Callback):
        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            progress.update(study, None)

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            progress.update(study, None)

    return _Progress()


def run_ray(study: Any, task: StudyTask, sampler: Any, n_trials: int, *, study_dir: Path,
            timeout: float | None = None, cpus_per_trial: float = 1.0, gpus_per_trial: float = 0.0,
            max_concurrent: int = 0, address: str | None = None, num_cpus: int | None = None,
            asha: dict[str, Any] | None = None, progress: Any = None) -> None:
    """Run ``n_trials`` trials of ``study`` with Ray Tune; each finished trial is told to the same storage."""
    from ray import tune

    ensure_ray(address, num_cpus=num_cpus)
    searcher = _make_searcher(study, task, sampler)
    scheduler = None
    if asha:
        from ray.tune.schedulers import ASHAScheduler

        epochs = task.train.epochs or 1
        scheduler = ASHAScheduler(time_attr="epoch", metric=task.objective.metric_names[0],
                                  mode=task.objective.modes[0], max_t=max(1, int(math.ceil(epochs))),
                                  grace_period=asha.get("grace", 1), reduction_factor=asha.get("reduction_factor", 3))
    trainable = tune.with_resources(tune.with_parameters(_trainable, task=task),
                                    {"cpu": cpus_per_trial, "gpu": gpus_per_trial})
    callbacks = [_progress_callback(study, progress)] if progress is not None else []
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=n_trials,
                                    max_concurrent_trials=max_concurrent or None, reuse_actors=True,
                                    time_budget_s=timeout or None),
        run_config=tune.RunConfig(name="ray", storage_path=str(study_dir.resolve()), verbose=0,
                                  callbacks=callbacks, log_to_file=False),
    )
    tuner.fit()

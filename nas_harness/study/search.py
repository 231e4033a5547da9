"""Run a study end to end: open (or resume) the Optuna study, seed it, run trials on a backend, report.

Resume semantics: ``run.n_trials`` is the number of *finished* (complete or pruned) trials the study should
have; re-running the same study file continues where it stopped.  Trials that a crash, SIGKILL or Ctrl-C
left RUNNING (or recorded as interrupted) are marked FAIL on restart and their arch is enqueued again,
once.  Failed trials (NaN loss, OOM, bad arch) keep their ``fail_reason`` and do not stop the study.
"""

from __future__ import annotations

import functools
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas_harness.backends._task import StudyTask
from nas_harness.errors import ConfigError
from nas_harness.objectives import Objective
from nas_harness.study.config import StudyConfig
from nas_harness.study.progress import StudyProgress
from nas_harness.study.samplers import make_pruner, make_sampler, reference_trials

INTERRUPTED = "interrupted"


@dataclass
class SearchSummary:
    """What a ``run_search`` call did and where the results are."""

    study_name: str
    storage: str
    study_dir: Path
    n_complete: int = 0
    n_pruned: int = 0
    n_fail: int = 0
    ran: int = 0
    wall_s: float = 0.0
    interrupted: bool = False
    best: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[Path] = field(default_factory=list)


def open_storage(url: str, heartbeat_s: int = 0) -> Any:
    """An Optuna storage object for a URL: RDB URLs (sqlite:///, postgresql://, ...) or ``journal:<file>``.

    SQLite gets a long busy timeout so several processes (and Ray's driver) can share one file.
    ``heartbeat_s`` > 0 (RDB only) turns on Optuna heartbeats: a trial silent for 3 intervals is failed by
    whichever worker notices, and its arch is queued again.
    """
    import optuna
    from optuna.storages import JournalStorage, RDBStorage
    from optuna.storages.journal import JournalFileBackend

    if url.startswith("journal:"):
        path = Path(url[len("journal:"):].removeprefix("//"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    kwargs: dict[str, Any] = {}
    if heartbeat_s:
        kwargs.update(heartbeat_interval=heartbeat_s, grace_period=3 * heartbeat_s,
                      heartbeat_stale_trial_callback=retry_stale_trial)
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        kwargs["engine_kwargs"] = {"creator": functools.partial(_sqlite_connect, path)}
    try:
        return RDBStorage(url, **kwargs)
    except (ImportError, optuna.exceptions.StorageInternalError, ValueError) as exc:
        raise ConfigError(f"run.storage: cannot open {url!r}: {exc}") from None


def _sqlite_connect(path: str) -> Any:
    """SQLite connection in WAL mode with synchronous=NORMAL: a commit no longer waits for fsync (~17 ms
    each on a busy disk, ~70 per trial), and a committed trial still survives SIGKILL of the process
    (only an OS crash or power loss could drop the last commits)."""
    import sqlite3

    con = sqlite3.connect(path, timeout=60, check_same_thread=False)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    return con


def build_task(cfg: StudyConfig, objective: Objective | None = None, backend: str | None = None) -> StudyTask:
    """The picklable per-trial task of a study (space, proxy data, recipe, objective, MAC settings)."""
    t = cfg.trial
    return StudyTask(space=cfg.search_space(), data=cfg.proxy_config(), train=cfg.train_config(),
                     objective=objective or Objective.from_config(cfg.objective), seed=cfg.seed,
                     stem_stride=t["stem_stride"], macs_resolution=t["macs_resolution"],
                     macs_num_classes=t["macs_num_classes"], evaluate_test=t["evaluate_test"],
                     cache_dir=str((cfg.study_dir / "trial_cache").resolve()) if t["cache"] else None,
                     backend=backend or cfg.run["backend"])


def open_study(cfg: StudyConfig, objective: Objective, sampler: Any = None, pruner: Any = None,
               storage: Any = None) -> Any:
    """Create or load the study; refuses to resume a study stored with other objective directions."""
    import optuna

    storage = storage if storage is not None else open_storage(cfg.storage_url, cfg.run["heartbeat_s"])
    existing = {s.study_name: s for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}
    if cfg.name in existing:
        old = [d.name.lower() for d in existing[cfg.name].directions]
        if old != objective.directions:
            raise ConfigError(f"objective.kind: study {cfg.name!r} already exists in {cfg.storage_url} with "
                              f"directions {old}; this file asks for {objective.directions}; use another name")
    study = optuna.create_study(storage=storage, study_name=cfg.name, sampler=sampler, pruner=pruner,
                                directions=objective.directions, load_if_exists=True)
    study.set_user_attr("config", cfg.to_dict())
    study.set_user_attr("objective", objective.kind)
    study.set_user_attr("metric_names", objective.metric_names)
    return study


def retry_stale_trial(study: Any, trial: Any) -> None:
    """Optuna ``failed_trial_callback`` for stale heartbeats: queue the arch again, saying why (Optuna has
    already finished the stale trial, so the reason goes on the retry as ``retry_reason``)."""
    attrs = {"retry_of": trial.number, "retry_reason": f"{INTERRUPTED}: heartbeat stopped (worker died)",
             **({"reference": trial.user_attrs["reference"]} if "reference" in trial.user_attrs else {})}
    if trial.params:
        study.enqueue_trial(trial.params, user_attrs=attrs, skip_if_exists=False)


def recover_interrupted(study: Any, fail_running: bool = True) -> list[int]:
    """Mark trials left RUNNING as FAIL (reason 'interrupted: ...') and enqueue each interrupted arch once.

    ``fail_running`` is only safe when no other worker is running this study right now (the default
    single-runner setup); with heartbeats on, Optuna fails stale trials instead and this only re-queues
    trials interrupted by Ctrl-C.  Returns the numbers of the trials whose arch was enqueued again.
    """
    from optuna.trial import TrialState

    storage = study._storage
    trials = study.get_trials(deepcopy=False)
    for t in trials:
        if fail_running and t.state == TrialState.RUNNING:
            storage.set_trial_user_attr(t._trial_id, "fail_reason",
                                        f"{INTERRUPTED}: left RUNNING by a run that stopped (crash or kill)")
            storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    out = []
    for t in trials:
        reason = str(t.user_attrs.get("fail_reason", ""))
        if t.state == TrialState.FAIL and reason.startswith(INTERRUPTED) and t.number not in retried:
            attrs = {"retry_of": t.number}
            if "reference" in t.user_attrs:
                attrs["reference"] = t.user_attrs["reference"]
            if t.params:
                study.enqueue_trial(t.params, user_attrs=attrs, skip_if_exists=False)
                out.append(t.number)
    return out


def enqueue_references(study: Any, space: Any, names: list[str]) -> list[str]:
    """Enqueue the named reference archs that the study has not seen yet (tagged ``reference``)."""
    seen = {t.user_attrs.get("reference") for t in study.get_trials(deepcopy=False)}
    todo = [(n, p) for n, p in reference_trials(space, names) if n not in seen]
    for name, params in todo:
        study.enqueue_trial(params, user_attrs={"reference": name})
    return [n for n, _ in todo]


def _counts(study: Any) -> dict[str, int]:
    from collections import Counter

    return dict(Counter(t.state.name.lower() for t in study.get_trials(deepcopy=False)))


def best_trials(study: Any) -> list[Any]:
    """Best trial (single objective, feasible) or the Pareto front (multi), [] when nothing qualifies."""
    try:
        return list(study.best_trials) if len(study.directions) > 1 else [study.best_trial]
    except ValueError:
        return []


def run_search(cfg: StudyConfig, *, progress: bool | None = None, log: Any = None) -> SearchSummary:
    """Run (or continue) the study described by ``cfg``; returns a summary.  Ctrl-C stops cleanly."""
    import optuna

    log = log or (lambda msg: print(msg, file=sys.stderr))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    objective = Objective.from_config(cfg.objective)
    backend = cfg.run["backend"]
    task = build_task(cfg, objective, backend)  # validates space/data/recipe before anything is written
    sampler = make_sampler(cfg.sampler, objective, cfg.seed, task.space)
    pruner = make_pruner(cfg.pruner) if objective.kind != "multi" else None
    reference_trials(task.space, cfg.sampler["enqueue"])  # validate reference names before writing
    from nas_harness.data import load_proxy

    load_proxy(task.data)  # a missing/corrupt data set is a DataError (exit 2) before anything is written
    cfg.study_dir.mkdir(parents=True, exist_ok=True)
    study = open_study(cfg, objective, sampler, pruner)
    summary = SearchSummary(cfg.name, cfg.storage_url, cfg.study_dir)

    if cfg.run["heartbeat_s"]:
        optuna.storages.fail_stale_trials(study)
    retried = recover_interrupted(study, fail_running=not cfg.run["heartbeat_s"])
    if retried:
        log(f"resume: {len(retried)} interrupted trial(s) marked FAIL and queued again: {retried}")
    added = enqueue_references(study, task.space, cfg.sampler["enqueue"])
    if added:
        log(f"enqueued reference archs: {', '.join(added)}")
    counts = _counts(study)
    finished = counts.get("complete", 0) + counts.get("pruned", 0)
    ended_before = finished + counts.get("fail", 0)
    remaining = max(0, cfg.run["n_trials"] - finished)
    log(f"study {cfg.name!r}: {objective.describe()}; backend {backend}; {finished} finished trial(s) in "
        f"{cfg.storage_url}; running {remaining} more")
    show = cfg.run["progress"] if progress is None else progress
    bar = StudyProgress(remaining, finished, objective.metric_names, enabled=show and remaining > 0)
    t0 = time.perf_counter()
    try:
        if remaining > 0 and backend == "local":
            from nas_harness.backends.local import run_local

            run_local(study, task, remaining, timeout=cfg.run["timeout_s"] or None, progress=bar)
        elif remaining > 0:
            from nas_harness.backends.ray import run_ray

            if cfg.pruner["kind"] != "none":
                log(f"note: pruner {cfg.pruner['kind']!r} is not used on Ray (OptunaSearch has no pruner); "
                    "set ray.asha = true for early stopping")
            ray = cfg.ray
            asha = {"grace": ray["asha_grace_epochs"], "reduction_factor": ray["asha_reduction_factor"]} \
                if ray["asha"] else None
            run_ray(study, task, sampler, remaining, study_dir=cfg.study_dir,
                    timeout=cfg.run["timeout_s"] or None, cpus_per_trial=ray["cpus_per_trial"],
                    gpus_per_trial=ray["gpus_per_trial"], max_concurrent=ray["max_concurrent"],
                    address=ray["address"] or None, num_cpus=ray["num_cpus"] or None, asha=asha, progress=bar)
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        bar.close()
    summary.wall_s = time.perf_counter() - t0
    counts = _counts(study)
    summary.n_complete, summary.n_pruned, summary.n_fail = (counts.get(k, 0) for k in ("complete", "pruned", "fail"))
    summary.ran = summary.n_complete + summary.n_pruned + summary.n_fail - ended_before
    summary.best = [_trial_summary(t, objective) for t in best_trials(study)]
    summary.outputs = write_outputs(study, cfg, log)
    return summary


def _trial_summary(t: Any, objective: Objective) -> dict[str, Any]:
    ua = t.user_attrs
    out = {"number": t.number, "arch": ua.get("arch"), "val_acc": ua.get("val_acc"), "macs": ua.get("macs"),
           "params": ua.get("params"), "values": t.values}
    if "reward" in ua:
        out["reward"] = ua["reward"]
    if "reference" in ua:
        out["reference"] = ua["reference"]
    return out


def write_outputs(study: Any, cfg: StudyConfig, log: Any) -> list[Path]:
    """Results table (CSV) and, when the plots module exists, the figures; never fails the search."""
    out: list[Path] = []
    table = cfg.study_dir / "trials.csv"
    try:
        try:
            from nas_harness.results import study_frame

            df = study_frame(cfg.storage_url, study_name=cfg.name)
        except ImportError:
            df = study.trials_dataframe()
        df.to_csv(table, index=False)
        out.append(table)
    except Exception as exc:  # a table problem must not lose the search
        log(f"warning: could not write {table}: {type(exc).__name__}: {exc}")
    if cfg.run["plots"]:
        try:
            from nas_harness.plots import write_study_figures
        except ImportError:
            return out
        try:
            out += list(write_study_figures(cfg.storage_url, study_name=cfg.name, out_dir=cfg.study_dir))
        except Exception as exc:
            log(f"warning: figures not written: {type(exc).__name__}: {exc}")
    return out

"""Run a study end to end: open (or resume) the Optuna study, seed it, run trials on a backend, report.

A study is one experiment.  Its first run stores :meth:`StudyConfig.comparable` (space, data, recipe with
the fixed thread count, objective, trial settings, seed); a later run with a different one exits 2 naming the
first differing key, before anything runs.  ``run.n_trials`` is the number of *finished* (complete or pruned)
trials the study should have, over every run and every worker: re-running the same file continues where it
stopped, and any number of workers (processes, machines, Ray drivers) can run it at once
(:mod:`nas_harness.records`).  Failed trials keep their ``fail_reason`` and do not count; a trial whose worker
died is failed as interrupted and its arch queued again.
"""

from __future__ import annotations

import random
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas_harness._config import write_output
from nas_harness.backends._task import StudyTask
from nas_harness.backends.settings import stored_settings
from nas_harness.errors import ConfigError, os_reason
from nas_harness.records import (
    Heartbeat,
    StorageLock,
    TrialRecord,
    TrialSlots,
    check_reachable,
    counts,
    open_storage,
    redact,
    set_study_attrs,
)
from nas_harness.study.config import StudyConfig
from nas_harness.study.progress import StudyProgress, note_stop
from nas_harness.study.samplers import make_pruner, make_sampler, reference_trials

MAX_DEFAULT_THREADS = 8


@dataclass
class SearchSummary:
    """What a ``run_search`` call did and where the results are."""

    study_name: str
    storage: str  # redacted
    study_dir: Path
    n_complete: int = 0
    n_pruned: int = 0
    n_fail: int = 0
    n_rejected: int = 0
    ran: int = 0
    wall_s: float = 0.0
    interrupted: bool = False
    stopped_by_failures: bool = False
    grid_exhausted: bool = False
    threads: int | None = None
    workers: int = 1
    max_concurrent: int = 0
    best: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[Path] = field(default_factory=list)
    stop_reason: str = ""  # one line: why the run ended (also the study's 'last_stop' user attribute)


def default_threads(cfg: StudyConfig) -> int:
    """The thread count a new study fixes when ``train.threads`` is omitted: one (parallel trials use the
    cores better than intra-op threads for networks of this size, and one thread gives the same numbers on any
    machine, idle or busy), or a Ray trial's whole CPUs.  It is stored with the study and reused on every
    resume; more threads per trial is an explicit ``train.threads``."""
    if cfg.run.backend == "ray":
        return max(1, min(MAX_DEFAULT_THREADS, int(cfg.ray.cpus_per_trial)))
    return 1


def first_difference(old: Any, new: Any, path: str = "") -> tuple[str, Any, Any] | None:
    """The first key path (depth first, in ``new``'s order) where two JSON-like values differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in list(new) + [k for k in old if k not in new]:
            sub = f"{path}.{key}" if path else str(key)
            if key not in old or key not in new:
                return sub, old.get(key, "(absent)"), new.get(key, "(absent)")
            found = first_difference(old[key], new[key], sub)
            if found:
                return found
        return None
    return None if old == new else (path, old, new)



def open_study(cfg: StudyConfig, storage: Any, sampler: Any = None, pruner: Any = None,
               log: Any = None) -> tuple[Any, int | str]:
    """Create or load the study; refuse a study stored with a different :meth:`StudyConfig.comparable`.

    Returns the study and the thread count its trials use (fixed at creation, reused on resume).
    """
    log = log or (lambda msg: None)
    comparable = cfg.comparable()
    content = data_identity(cfg)
    if content is not None:
        comparable["data"]["content"] = content
    with StorageLock(cfg.storage_url):  # two workers starting a new study together: one creates and records it
        return _open_study(cfg, storage, sampler, pruner, log, comparable)


def _existing_study(cfg: StudyConfig, storage: Any, sampler: Any = None,
                    pruner: Any = None) -> tuple[Any, dict[str, Any]]:
    """(the stored study named ``cfg.name``, its user attributes), or (None, {}) when there is none; a study row
    Optuna cannot read (an attribute that is not JSON: changed behind nas-harness's back) is one line."""
    import optuna

    try:
        if cfg.name not in optuna.get_all_study_names(storage):
            return None, {}
        study = optuna.load_study(study_name=cfg.name, storage=storage, sampler=sampler, pruner=pruner)
        return study, study.user_attrs
    except (AssertionError, ValueError, TypeError, LookupError) as exc:
        detail = " ".join(str(exc).split())[:80]
        raise ConfigError(f"storage {redact(cfg.storage_url)}: study {cfg.name!r}: a stored study row is "
                          f"inconsistent (Optuna cannot read it: {type(exc).__name__}: {detail}): changed outside "
                          "nas-harness?") from None


def data_identity(cfg: StudyConfig) -> str | None:
    """The content fingerprint of the data a study trains on (:meth:`ProxyData.fingerprint`: the images and
    labels of every split, not where they live) where the data comes from a folder the user names
    (``data.root``: image folders, CIFAR, a Fashion-MNIST copy); None for the built-in data sets, whose studies
    keep their comparability records unchanged."""
    from nas_harness.data import content_fingerprint

    return content_fingerprint(cfg.data)


def _open_study(cfg: StudyConfig, storage: Any, sampler: Any, pruner: Any, log: Any,
                comparable: dict[str, Any]) -> tuple[Any, int | str]:
    import optuna

    wanted = cfg.train.threads
    study, study_attrs = _existing_study(cfg, storage, sampler, pruner)
    existing = study is not None
    if existing:
        where = f"study {cfg.name!r} in {redact(cfg.storage_url)}"
        stored = study_attrs.get("comparable")
        if stored is None and not isinstance(study.user_attrs.get("config"), dict):
            raise ConfigError(f"name: {where} was not created by nas-harness (it has no comparability record or "
                              "study settings); choose another name or another --storage")
        if stored is not None and not isinstance(stored, dict):
            raise ConfigError(f"comparable: {where} holds a damaged comparability record ({_short(stored)}, "
                              "expected a table); nothing was changed")
        if isinstance(stored, dict):
            if "content" in comparable["data"] and isinstance(stored.get("data"), dict) \
                    and "content" not in stored["data"]:
                stored = {**stored, "data": {**stored["data"], "content": comparable["data"]["content"]}}
                set_study_attrs(study, comparable=stored)
                log(f"study {cfg.name!r} predates data identities: recording this data's now")
            stored_threads = (stored.get("train") or {}).get("threads")
            threads = wanted if wanted is not None else stored_threads
            comparable["train"]["threads"] = threads
            check_stored_trials(study)
            diff = first_difference(stored, comparable)
            if diff is not None:
                key, old, new = diff
                raise ConfigError(
                    f"{key}: study {cfg.name!r} in {redact(cfg.storage_url)} was created with {_short(old)}, this "
                    f"run has {_short(new)}; its trials would not be comparable. Use another name, or "
                    f"'--fork NEW_NAME' to start a new study with this file that re-evaluates the old one's archs")
            return study, threads if threads is not None else default_threads(cfg)
        log(f"study {cfg.name!r} predates comparability records: recording this file's settings for it now")
        threads = wanted if wanted is not None else default_threads(cfg)
    else:
        threads = wanted if wanted is not None else default_threads(cfg)
        study = optuna.create_study(storage=storage, study_name=cfg.name, sampler=sampler, pruner=pruner,
                                    directions=cfg.objective.directions, load_if_exists=True)
    if [d.name.lower() for d in study.directions] != cfg.objective.directions:
        raise ConfigError(f"objective.kind: study {cfg.name!r} already exists in {redact(cfg.storage_url)} with "
                          f"other objective directions; use another name")
    comparable["train"]["threads"] = threads
    set_study_attrs(study, comparable=comparable, config=stored_settings(cfg), objective=cfg.objective.kind,
                    metric_names=list(cfg.objective.metric_names))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(cfg.objective.metric_names)  # optuna-dashboard shows 'reward', not 'Objective 0'
    return study, threads


def check_stored_trials(study: Any) -> None:
    """Before a study is continued: refuse, in one line naming storage, study, trial and key, a stored trial
    whose row (:func:`nas_harness.results.stored_trials`), record (:func:`nas_harness.results.check_stored_trial`),
    objective value (finite) or arch string is not what nas-harness writes: a sampler fed a tampered value would
    propose from it, and the summary print it."""
    import math

    from nas_harness.results.frame import check_stored_arch, check_stored_trial, damaged, stored_trials

    for t in stored_trials(study):
        check_stored_trial(study, t)
        for v in t.values or ():
            if not math.isfinite(v):
                raise damaged(study, "value", v, "a finite number", trial=t.number)
        check_stored_arch(study, t)


def check_continued_trials(cfg: StudyConfig) -> None:
    """``search --check``: the stored trials of the study a run would continue, read without writing
    (:func:`check_stored_trials`), so that the check refuses what the run would; nothing when the storage or the
    study does not exist yet (nor on a database server whose schema Optuna has not made)."""
    import optuna

    from nas_harness.records._storage import journal_path, probe_server, sqlite_path

    url = cfg.storage_url
    files = [p for p in (sqlite_path(url), journal_path(url)) if p is not None]
    if files and not all(p.is_file() for p in files):
        return
    if not files and "studies" not in probe_server(url):
        return
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study, _ = _existing_study(cfg, open_storage(url, create=False))
    if study is not None:
        check_stored_trials(study)


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 80 else text[:77] + "..."


def build_task(cfg: StudyConfig, threads: int | str | None = None, backend: str | None = None) -> StudyTask:
    """The picklable per-trial task of a study (space, proxy data, recipe with its thread count, objective)."""
    train = cfg.train_config()
    if threads is not None:
        train = train.replace(threads=threads)
    evaluator = cfg.make_evaluator(train) if cfg.evaluator.kind != "train" else None
    return StudyTask(space=cfg.search_space(), data=cfg.data, train=train, objective=cfg.objective,
                     trial=cfg.trial, seed=cfg.seed,
                     cache_dir=str((cfg.study_dir / "trial_cache").resolve()) if cfg.trial.cache else None,
                     backend=backend or cfg.run.backend, latency=cfg.latency_settings(), evaluator=evaluator)


def enqueue_references(study: Any, space: Any, names: list[str]) -> list[str]:
    """Enqueue the named reference archs that the study has not seen yet (tagged ``reference``)."""
    seen = {t.user_attrs.get("reference") for t in study.get_trials(deepcopy=False)}
    todo = [(n, p) for n, p in reference_trials(space, names) if n not in seen]
    for name, params in todo:
        study.enqueue_trial(params, user_attrs={"reference": name})
    return [n for n, _ in todo]


def grid_candidates(space: Any, seed: int) -> list[dict[str, Any]]:
    """Every arch of the space as Optuna parameters, in a seeded random order (a partial grid is a sample)."""
    import itertools

    grid = space.param_grid()
    names = list(grid)
    combos = [dict(zip(names, values)) for values in itertools.product(*(grid[n] for n in names))]
    random.Random(seed).shuffle(combos)
    return combos


def best_trials(study: Any) -> list[Any]:
    """Best trial (single objective, feasible) or the Pareto front (multi), [] when nothing qualifies."""
    try:
        return list(study.best_trials) if len(study.directions) > 1 else [study.best_trial]
    except ValueError:
        return []


def check_study(cfg: StudyConfig) -> Any:
    """Everything about a study that can be checked without writing anything (``search --check`` and the
    start of every run): the space, the data set and its splits, the results folder, the storage (writable,
    or a server that answers), the resources a trial asks for, the sampler.  Each problem is one ConfigError
    (exit 2).  Returns the sampler, since building it is its check."""
    from nas_harness._config import check_dir_writable
    from nas_harness.backends.resources import check_resources
    from nas_harness.data import load_proxy

    space = cfg.search_space()
    load_proxy(cfg.data)  # a missing/corrupt data set or impossible split is a DataError (exit 2)
    check_dir_writable(cfg.study_dir, "run.results_dir")
    check_reachable(cfg.storage_url)
    check_resources(cfg)
    if cfg.evaluator.kind != "train":  # e.g. a table study's space must be the table's
        cfg.make_evaluator().check(cfg.eval_context())
    return make_sampler(cfg.sampler, cfg.objective, cfg.seed, space)


def prepare(cfg: StudyConfig, log: Any) -> tuple[Any, StudyTask, Any]:
    """Validate everything that can be checked without writing, then open (or create) the study.

    Returns (study, task, sampler).  Data, results folder and storage problems are
    one-line errors raised before any file is created.
    """
    sampler = check_study(cfg)
    pruner = make_pruner(cfg.pruner) if cfg.objective.kind != "multi" else None
    storage = open_storage(cfg.storage_url)
    study, threads = open_study(cfg, storage, sampler, pruner, log)
    task = build_task(cfg, threads)
    offset = claim_sampler_streams(study, cfg, planned_workers(cfg, task))
    task.sampler_offset = offset
    if offset:  # a continued study: a sampler seeded as on the first run would draw the same archs again
        sampler = make_sampler(cfg.sampler, cfg.objective, cfg.seed + offset, task.space)
        study.sampler = sampler
    if task.evaluator is not None:  # one-time work of the evaluator (a supernet's training, a surrogate's fit)
        task.evaluator.prepare(cfg.eval_context(task.train), log)
    return study, task, sampler


def planned_workers(cfg: StudyConfig, task: StudyTask) -> int:
    """How many samplers this run starts: its local workers (``run.workers``, or as many as the cores allow at
    the study's threads per trial), or one (a Ray driver)."""
    if cfg.run.backend != "local":
        return 1
    from nas_harness.study.workers import default_workers

    threads = task.train.threads if isinstance(task.train.threads, int) else 1
    return max(1, cfg.run.workers or default_workers(threads, task.train.device))


def claim_sampler_streams(study: Any, cfg: StudyConfig, n: int) -> int:
    """What this run adds to the study's seed for its samplers (worker ``i`` uses ``seed + offset + i``), claimed
    under the storage's lock so that no two runs use the same: at least the number of trials the study holds (a
    continued study does not draw an earlier run's archs again) and past every stream an earlier or concurrent
    run claimed (two commands started together on one study do not propose the same archs).  A new study's
    first run gets 0 and samples exactly as before; results never depend on it (a trial's numbers depend on its
    arch and seed)."""
    with StorageLock(cfg.storage_url):
        claimed = study.user_attrs.get("sampler_streams")
        start = max(claimed if isinstance(claimed, int) else 0, len(study.get_trials(deepcopy=False)))
        set_study_attrs(study, sampler_streams=start + n)
    return start


def run_search(cfg: StudyConfig, *, progress: bool | None = None, log: Any = None) -> SearchSummary:
    """Run (or continue) the study described by ``cfg``; returns a summary.  Ctrl-C stops cleanly."""
    import optuna

    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study, task, sampler = prepare(cfg, log)
    cfg.study_dir.mkdir(parents=True, exist_ok=True)
    summary = SearchSummary(cfg.name, redact(cfg.storage_url), cfg.study_dir, threads=task.train.threads)
    backend = cfg.run.backend
    ray_cpus = ray_cpus_per_trial(cfg, task.train.threads, log) if backend == "ray" else 0.0
    added = enqueue_references(study, task.space, list(cfg.sampler.enqueue))
    if added:
        log(f"enqueued reference archs: {', '.join(added)}")
    grid = grid_candidates(task.space, cfg.seed) if cfg.sampler.kind == "grid" else None
    target = min(cfg.run.n_trials, len(grid)) if grid is not None else cfg.run.n_trials
    if grid is not None and cfg.run.n_trials > len(grid):
        log(f"grid: the space has {len(grid)} archs; the study ends after those (run.n_trials = {cfg.run.n_trials})")
    lock = StorageLock(cfg.storage_url)

    def slots_for(s: Any) -> TrialSlots:
        return TrialSlots(s, target, lock, Heartbeat(s._storage, cfg.run.heartbeat_s), task.params_of_arch,
                          candidates=grid, key=lambda p: str(task.space.arch_from_params(p)), log=log)

    before = counts(study)
    remaining = max(0, target - before.finished)
    log(f"study {cfg.name!r}: {cfg.objective.describe()}; backend {backend}; {before.finished} finished trial(s) "
        f"in {redact(cfg.storage_url)}; {remaining} to go; {task.train.threads} thread(s) per trial")
    workers = 1  # the start-up lines come before the progress bar starts (printed later they would tear it)
    if backend == "local":
        from nas_harness.backends import fit_workers

        threads = task.train.threads if isinstance(task.train.threads, int) else 1
        workers, note = fit_workers(cfg.run.workers, threads, task.train.device, remaining)
        if note:
            log(f"note: {note}")
        if workers > 1:
            log(f"{workers} workers, {threads} thread(s) each")
        _note_idle_gpus(cfg, log)
    else:
        if cfg.pruner.kind != "none":
            log(f"note: pruner {cfg.pruner.kind!r} has no effect on Ray; use ray.scheduler = 'asha' or 'median'")
        if cfg.run.workers > 1:
            log(f"note: run.workers = {cfg.run.workers} applies to the local backend; on Ray, trials run as "
                "many at once as ray.max_concurrent and the CPUs allow")
    summary.workers = workers
    show = cfg.run.progress if progress is None else progress
    bar = StudyProgress(remaining, before.finished, cfg.objective.metric_names, enabled=show and remaining > 0)
    say = bar.write if show and remaining > 0 else log
    deadline = time.time() + cfg.run.timeout_s if cfg.run.timeout_s else None
    max_failures = cfg.run.max_failures or cfg.run.n_trials
    t0 = time.perf_counter()
    tracking = start_tracking(cfg, say)
    from nas_harness.backends import StudyRun, get_backend
    from nas_harness.study.workers import worker_opener

    resources = cfg.ray.replace(cpus_per_trial=ray_cpus) if backend == "ray" else cfg.ray
    run = StudyRun(study, task, slots_for, sampler=sampler, deadline=deadline, max_failures=max_failures,
                   progress=bar, log=say, on_stored=tracking.trial if tracking.active else None,
                   study_dir=cfg.study_dir, workers=workers,
                   open_worker=worker_opener(cfg, task.train.threads, target, grid,
                                             task.sampler_offset) if workers > 1 else None)
    try:
        result = get_backend(backend, resources).run_study(run)
        summary.stopped_by_failures = result.stopped_by_failures
        summary.max_concurrent = result.max_concurrent
        summary.grid_exhausted = result.exhausted
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        bar.close()
    if summary.grid_exhausted:
        log(f"grid exhausted: every arch of the space has been evaluated ({len(grid or [])} archs)")
    summary.wall_s = time.perf_counter() - t0
    _summarise(study, summary, before.finished + before.failed)
    summary.stop_reason = note_stop(study, summary, cfg, target, len(grid or []), deadline)
    summary.best = [_trial_summary(t) for t in best_trials(study)]
    tracking.sync(study.get_trials(deepcopy=False))  # trials stored by a worker that died before logging them
    summary.outputs = write_outputs(study, cfg, log)
    tracking.artifacts([p for p in summary.outputs if p.parent == cfg.study_dir])
    tracking.artifacts([p for p in summary.outputs if p.parent != cfg.study_dir], "figures")
    tracking.close()
    return summary


def ray_cpus_per_trial(cfg: StudyConfig, threads: int | str | None, log: Any) -> float:
    """The CPUs a Ray trial of this study reserves: exactly its thread count (fixed when the study was created),
    so CPU trials never oversubscribe the cores; a request that differs is packed to it, with a note, and refused
    in one line when no node has that many CPUs.  GPU trials (``gpus_per_trial > 0``) keep their request: their
    work runs on the GPU, and fractional CPUs are how several share one."""
    requested = float(cfg.ray.cpus_per_trial)
    if not isinstance(threads, int) or float(threads) == requested or cfg.ray.gpus_per_trial > 0:
        return requested
    from nas_harness.backends.resources import cluster_nodes

    best = max((n.cpus for n in cluster_nodes(cfg.ray.address or None, cfg.ray.num_cpus or None)), default=0.0)
    if threads > best:
        raise ConfigError(f"ray.cpus_per_trial: study {cfg.name!r} runs {threads} thread(s) per trial (train.threads, "
                          f"fixed when it was created), so each Ray trial needs {threads} CPUs, but the largest Ray "
                          f"node has {best:g}; run it with --backend local, or --fork a study with train.threads = "
                          f"{max(1, int(best))}")
    log(f"note: study {cfg.name!r} runs {threads} thread(s) per trial (fixed when it was created): each Ray trial "
        f"reserves {threads} CPU(s), not ray.cpus_per_trial = {requested:g}, so no core runs two threads")
    return float(threads)


def start_tracking(cfg: StudyConfig, log: Any, out_dir: Path | None = None) -> Any:
    """The study's experiment trackers ([tracking]; default folders under ``out_dir``, else the study's
    folder), its parent run opened; a :class:`~nas_harness.tracking.StudyTracking` that does nothing when none
    is on."""
    from nas_harness.tracking import flat_params, open_tracking

    tracking = open_tracking(cfg.tracking.settings(out_dir or cfg.study_dir), cfg.name,
                             secrets=[cfg.storage_url, cfg.ray.address], log=log)
    if tracking.active:
        params = flat_params(stored_settings(cfg))
        tags = {"nas.objective": cfg.objective.kind, "nas.storage": redact(cfg.storage_url),
                "nas.backend": cfg.run.backend}
        tracking.start(params, tags, value_names=cfg.objective.metric_names)
    return tracking



def _note_idle_gpus(cfg: StudyConfig, say: Any) -> None:
    """A local worker trains on one device: say how to use the others of a multi-GPU machine."""
    import torch

    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if n > 1 and cfg.train.device in ("auto", "cuda"):
        say(f"note: this machine has {n} GPUs and a local worker uses one (cuda:0); start one worker per GPU "
            f"(--device cuda:0, --device cuda:1, ... on the same study) or use --backend ray --gpus-per-trial 1")


def _summarise(study: Any, summary: SearchSummary, ended_before: int) -> None:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    for t in trials:
        if t.state == TrialState.COMPLETE:
            if t.user_attrs.get("rejected"):
                summary.n_rejected += 1
            else:
                summary.n_complete += 1
        elif t.state == TrialState.PRUNED:
            summary.n_pruned += 1
        elif t.state == TrialState.FAIL:
            summary.n_fail += 1
    summary.ran = summary.n_complete + summary.n_rejected + summary.n_pruned + summary.n_fail - ended_before


def _trial_summary(t: Any) -> dict[str, Any]:
    rec = TrialRecord.from_attrs(t.user_attrs)
    out: dict[str, Any] = {"number": t.number, "arch": rec.arch, "val_acc": rec.val_acc, "macs": rec.macs,
                           "params": rec.params, "values": t.values}
    if rec.reward is not None:
        out["reward"] = rec.reward
    if rec.latency_ms is not None:
        out["latency_ms"] = rec.latency_ms
    if rec.reference:
        out["reference"] = rec.reference
    from nas_harness.objectives import TABLE_COSTS

    for key in TABLE_COSTS.values():  # a benchmark table's measurement, when the study's cost is one
        if isinstance(t.user_attrs.get(key), (int, float)):
            out[key] = t.user_attrs[key]
    return out


def write_outputs(study: Any, cfg: StudyConfig, log: Any) -> list[Path]:
    """Results table (CSV) and, when enabled, the figures; a failure here never loses the search."""
    from nas_harness.results import study_frame

    out: list[Path] = []
    table = cfg.study_dir / "trials.csv"
    try:
        df = study_frame(cfg.storage_url, study_name=cfg.name)
        with write_output(table, "w", f"{str(table)!r}") as f:  # never opens a FIFO or device at that name
            df.to_csv(f, index=False)
        out.append(table)
    except ConfigError as exc:  # not a regular file: one line naming it
        log(f"warning: could not write {exc}; the trials are safe in {redact(cfg.storage_url)} "
            "(write it later with `nas-harness export` / `report`)")
    except OSError as exc:
        log(f"warning: could not write {table}: {os_reason(exc)}; the trials are safe in "
            f"{redact(cfg.storage_url)} (write it later with `nas-harness export` / `report`)")
        return out
    except Exception as exc:  # a table problem must not lose the search
        log(f"warning: could not write {table}: {type(exc).__name__}: {exc}")
    if cfg.run.plots:
        try:
            from nas_harness.plots import write_study_figures

            out += list(write_study_figures(cfg.storage_url, study_name=cfg.name, out_dir=cfg.study_dir / "figures"))
        except ConfigError as exc:  # a figure file that is not a regular file: named
            log(f"warning: figures not written: {exc}; the trials are safe in {redact(cfg.storage_url)} "
                "(draw them later with `nas-harness plot`)")
        except OSError as exc:
            log(f"warning: figures not written: {os_reason(exc)}; the trials are safe in "
                f"{redact(cfg.storage_url)} (draw them later with `nas-harness plot`)")
        except Exception as exc:
            log(f"warning: figures not written: {type(exc).__name__}: {exc}")
    return out


def fork_study(cfg: StudyConfig, new_name: str, log: Any = None) -> StudyConfig:
    """A new study ``new_name`` with ``cfg``'s settings whose first trials re-evaluate the finished archs of
    study ``cfg.name`` (those inside the new space), in their original order; returns the new config."""
    import optuna
    from optuna.trial import TrialState

    from nas_harness.arch import parse_arch

    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the harness says what it creates, in its own words
    try:
        old = optuna.load_study(study_name=cfg.name, storage=open_storage(cfg.storage_url))
    except KeyError:
        raise ConfigError(f"--fork: there is no study {cfg.name!r} in {redact(cfg.storage_url)} to fork") from None
    d = cfg.to_dict()
    d["name"] = new_name
    if cfg.run.storage == "":
        d["run"]["storage"] = ""
    new = StudyConfig.from_dict(d)
    study, task, _ = prepare(new, log)
    if counts(study).finished or study.get_trials(deepcopy=False):
        return new  # already forked: a re-run continues the fork
    seen: set[str] = set()
    skipped = 0
    for t in old.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        arch = t.user_attrs.get("arch")
        if not isinstance(arch, str) or arch in seen or t.user_attrs.get("rejected"):
            continue
        seen.add(arch)
        try:
            params = task.space.params_of(parse_arch(arch))
        except ValueError:
            skipped += 1
            continue
        attrs = {"forked_from": f"{cfg.name}#{t.number}"}
        if t.user_attrs.get("reference"):
            attrs["reference"] = t.user_attrs["reference"]
        study.enqueue_trial(params, user_attrs=attrs, skip_if_exists=False)
    log(f"fork: study {new_name!r} starts by re-evaluating {len(seen) - skipped} arch(s) of {cfg.name!r}"
        + (f"; {skipped} are outside the new space" if skipped else ""))
    return new

"""Ray Tune backend: the same :class:`StudyTask` in Ray workers, with ``OptunaSearch`` bound to the study's
own Optuna storage, so a study can be started locally and continued on Ray (or the other way round), and
several drivers (or local workers) can share it.

How an outcome reaches the study (ray 2.60 + optuna 5.0):

* The searcher takes its trials through :class:`~nas_harness.records.TrialSlots` (so all workers together
  finish exactly ``n_trials``) and tells Optuna through :func:`nas_harness.records.tell`, the same function
  as the local loop.  ``num_samples`` is unlimited: the searcher says when the study is full.
* The trainable reports after every epoch *except the last*; its final report carries the whole outcome.
  A scheduler (ASHA, median stopping) that stops a trial before that leaves a last result without it: the
  trial is PRUNED with the epochs it trained (``stopped_by = "scheduler"``).  A trial that trained its whole
  budget is COMPLETE, whatever the scheduler decides at its final report.
* A trial whose worker died (node lost, process killed) is failed as interrupted and its arch queued again.
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
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from nas_harness.backends._backend import Backend, RunResult, StudyRun, register_backend
from nas_harness.backends._task import StudyTask, reason
from nas_harness.backends.jobs import Job, JobResult, run_one
from nas_harness.backends.loop import TrialLoop
from nas_harness.records import DONE, INTERRUPTED, Outcome, TrialRecord, mark_running

_DONE, _STATE, _RECORD, _VALUES, _CONS = "nas_done", "nas_state", "nas_record", "nas_values", "nas_constraints"


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


#: Seconds a Ray head gets to accept a TCP connection before ``ray.address`` is refused (Ray itself would retry
#: an unreachable head for minutes).
RAY_PROBE_TIMEOUT_S = 5.0


def probe_address(address: str, timeout: float | None = None) -> None:
    """Refuse, in one ConfigError line, a Ray address (``host:port`` or ``ray://host:port``) whose port does not
    accept a TCP connection within ``timeout`` seconds (:data:`RAY_PROBE_TIMEOUT_S`); ``auto``/``local`` and
    addresses without a port are left to Ray."""
    import socket

    from nas_harness.errors import ConfigError

    text = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host:
        return
    host = host.strip("[]")
    limit = RAY_PROBE_TIMEOUT_S if timeout is None else timeout
    try:
        with socket.create_connection((host, int(port)), timeout=limit):
            pass
    except OSError as exc:
        why = "no answer" if isinstance(exc, TimeoutError) else exc.strerror or type(exc).__name__
        raise ConfigError(f"ray.address: cannot reach the Ray head at {address!r} within {limit:g} s ({why}); is "
                          "`ray start --head` running there, and is the port open?") from None


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
        # "local": start a private instance; a bare ray.init() would join any cluster that `ray start`
        # left on this machine (/tmp/ray/ray_current_cluster), silently.
        ray.init(address="local", **kwargs)
    else:
        probe_address(address)
        ray.init(address=address, **kwargs)
    return True


# ---------------------------------------------------------------------------------------------- search
def _define_by_run(trial: Any, task: StudyTask) -> dict[str, Any]:
    """Picklable define-by-run space: the task proposes (same param names as the local loop)."""
    task.propose(trial)
    return {}


def outcome_from_result(result: dict | None, error: bool) -> Outcome:
    """The outcome of a Tune trial from its last result (None when it never reported)."""
    record = TrialRecord.from_attrs(json.loads(result[_RECORD])) if result and _RECORD in result else TrialRecord()
    if error or not result:
        return Outcome("fail", None, record.replace(
            fail_reason=f"{INTERRUPTED}: the Ray worker running this trial died (node lost or process killed); "
                        "Ray's error file is under results/<study>/ray/"))
    if not result.get(_DONE):
        return Outcome("pruned", None, record.replace(full_budget=False, stopped_by="scheduler"),
                       json.loads(result[_CONS]) if result.get(_CONS) else None)
    state = result.get(_STATE, "fail")
    values = json.loads(result[_VALUES]) if result.get(_VALUES) else None
    cons = json.loads(result[_CONS]) if result.get(_CONS) else None
    return Outcome(state if state in ("complete", "pruned", "fail") else "fail", values, record, cons)


def _sigterm_as_interrupt() -> Any:
    """Make SIGTERM end the search like Ctrl-C (KeyboardInterrupt, noted as SIGTERM: finished trials kept, one
    line, exit 143) instead of Ray's native handler (a signal dump and an abort); returns the handler it
    replaced (None off the main thread, where handlers cannot be set)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    def stop(signum: int, frame: Any) -> None:
        from nas_harness.errors import note_interrupt

        note_interrupt(signum)
        raise KeyboardInterrupt("SIGTERM")

    return signal.signal(signal.SIGTERM, stop)


def _detached(kind: str) -> Any:
    """What a pickled searcher or callback of a search becomes (Tune writes both into ``ray/tuner.pkl``): an
    empty one.  The study storage is the state of a search, and its URL (with its password) and the objects
    holding it stay in the driver's memory, never in a file."""
    if kind == "searcher":
        from ray.tune.search import Searcher

        return Searcher()
    from ray.tune import Callback

    return Callback()


def _make_searcher(run: StudyRun, stats: dict[str, Any]) -> Any:
    from ray.tune.search import Searcher
    from ray.tune.search.optuna import OptunaSearch
    from ray.tune.utils.util import unflatten_dict

    task, deadline = run.task, run.deadline

    class _StudySearch(OptunaSearch):
        """OptunaSearch whose trials go through the study's one trial loop (:class:`TrialLoop`): slots,
        ``begin`` when Tune asks for a trial, ``finish`` when Tune reports its end."""

        def __reduce__(self) -> Any:
            return _detached, ("searcher",)

        def _setup_study(self, mode: Any) -> None:
            super()._setup_study(mode)
            self.slots = run.slots_for(self._ot_study)
            self.loop = TrialLoop(self._ot_study, task, self.slots, max_failures=run.max_failures,
                                  progress=run.progress, log=run.log, on_stored=run.on_stored)

        def suggest(self, trial_id: str) -> dict | str | None:
            if deadline is not None and time.time() >= deadline:
                return Searcher.FINISHED
            if self.loop.result.stopped_by_failures:
                return Searcher.FINISHED  # as the local loop: stop starting trials after that many failures
            if time.time() < getattr(self, "_next_try", 0.0):
                return None  # Tune asks in a tight loop: look at the storage at most once a second when full
            got = self.slots.try_acquire()
            if got == DONE:
                return Searcher.FINISHED
            if got is None:
                if not self._live_here():
                    time.sleep(self.slots.poll_s)  # nothing of ours runs: do not spin while others' trials run
                self._next_try = time.time() + 1.0
                return None
            self._ot_trials[trial_id] = got
            params = self._suggest_from_define_by_run_func(self._space, got)
            self.loop.begin(got, task.space.arch_from_params(got.params))
            return unflatten_dict(params)

        def save(self, checkpoint_path: str) -> None:
            # Tune checkpoints searcher state for its own resume; the study storage is the state here (a
            # re-run resumes from it), so nothing else needs saving.
            with open(checkpoint_path, "wb") as f:
                f.write(b"")

        def restore(self, checkpoint_path: str) -> None:
            return None

        def _live_here(self) -> bool:
            return any(tid not in self._completed_trials for tid in self._ot_trials)

        def on_trial_result(self, trial_id: str, result: dict) -> None:
            if trial_id in self._completed_trials or trial_id not in self._ot_trials:
                return
            ot_trial = self._ot_trials[trial_id]
            placed = self.__dict__.setdefault("_placed", set())
            if trial_id not in placed and result.get(_RECORD):  # a running trial says where it runs
                placed.add(trial_id)
                record = TrialRecord.from_attrs(json.loads(result[_RECORD]))
                mark_running(self._ot_study, ot_trial._trial_id, TrialRecord(
                    host=record.host, ray_node=record.ray_node, gpu_ids=record.gpu_ids))
            if task.objective.kind != "multi":
                step = int(result.get("epoch", 0))
                reported = self.__dict__.setdefault("_reported", set())
                if (trial_id, step) not in reported:  # Tune may hand the same result over twice
                    reported.add((trial_id, step))
                    ot_trial.report(result[self.metric], step)

        def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
            if trial_id in self._completed_trials or trial_id not in self._ot_trials:
                return
            self.loop.finish(self._ot_trials[trial_id], outcome_from_result(result, error))
            stats["stopped_by_failures"] = self.loop.result.stopped_by_failures
            self._completed_trials.add(trial_id)

    metric = task.objective.metric_names
    mode = task.objective.modes
    study = run.study
    return _StudySearch(space=functools.partial(_define_by_run, task=task),
                        metric=metric if len(metric) > 1 else metric[0], mode=mode if len(mode) > 1 else mode[0],
                        sampler=run.sampler, study_name=study.study_name, storage=study._storage)


def _result(task: StudyTask, out: Outcome | None, value: float, record: TrialRecord, done: bool) -> dict:
    names = task.objective.metric_names
    attrs = record.to_attrs()
    if out is not None and out.values is not None:
        metrics = dict(zip(names, out.values))
    else:
        metrics = {n: (value if i == 0 else float(attrs.get(n, 0.0))) for i, n in enumerate(names)}
    metrics = {k: (0.0 if not math.isfinite(v) else float(v)) for k, v in metrics.items()}
    metrics.update({_DONE: done, _STATE: out.state if out else "running", _RECORD: json.dumps(attrs),
                    "epoch": float(attrs.get("epochs", 0.0))})
    if out is not None and out.values is not None:
        metrics[_VALUES] = json.dumps(out.values)
    if out is not None and out.constraints is not None:
        metrics[_CONS] = json.dumps(out.constraints)
    return metrics


def _trainable(config: dict[str, Any], task: StudyTask) -> None:
    """Ray Tune function trainable (module level, so it pickles): evaluate one candidate, report per epoch.

    The last epoch is not reported on its own: the final report (with the outcome) takes its place, so a
    scheduler deciding at the budget's end cannot turn a fully trained trial into a stopped one.
    """
    from ray import tune

    arch = task.space.arch_from_params(config)
    last = _epochs(task)
    where = _placement()

    def on_epoch(value: float, epoch: int, live: TrialRecord) -> None:
        if last is None or epoch < last:
            tune.report(_result(task, None, value, live.replace(**where), done=False))

    out = task.evaluate(arch, on_epoch)
    out.record = out.record.replace(**where)
    tune.report(_result(task, out, 0.0, out.record, done=True))


def _placement() -> dict[str, Any]:
    """Where Ray put this trial: host, node id and the GPU ids it was given (CUDA_VISIBLE_DEVICES)."""
    import socket

    import ray

    ctx = ray.get_runtime_context()
    gpus = ray.get_gpu_ids()
    return {"host": socket.gethostname(), "ray_node": ctx.get_node_id(),
            "gpu_ids": ",".join(str(g) for g in gpus) if gpus else None}


def _epochs(task: StudyTask) -> int | None:
    from nas_harness.data import load_proxy

    train = task.train
    if train.epochs is not None:
        return int(math.ceil(train.epochs))
    n = len(load_proxy(task.data).train_y)
    return int(math.ceil(train.steps * min(train.batch_size, n) / max(1, n) - 1e-9)) if train.steps else None


def _fits_at_once(cpus: float, gpus: float, max_concurrent: int) -> int:
    """How many trials the connected cluster can run at once (at most ``max_concurrent`` when set)."""
    import ray

    total = ray.cluster_resources()
    fits = int(total.get("CPU", 1) // cpus) if cpus else 1
    if gpus:
        fits = min(fits, int(total.get("GPU", 0) // gpus))
    fits = max(1, min(fits, 256))
    return min(fits, max_concurrent) if max_concurrent else fits


def _callback(stats: dict[str, Any]) -> Any:
    """A Tune callback that records how many trials Ray ran at once (``stats["max_concurrent"]``, counted after
    every step of Tune's loop)."""
    from ray.tune import Callback
    from ray.tune.experiment import Trial

    class _Watch(Callback):
        def __reduce__(self) -> Any:
            return _detached, ("callback",)

        def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
            running = sum(t.status == Trial.RUNNING for t in trials)
            stats["max_concurrent"] = max(stats.get("max_concurrent", 0), running)

    return _Watch()


@register_backend
class RayBackend(Backend):
    """Ray: a study's trials as Ray Tune trials (``OptunaSearch`` on the study's own storage, an optional
    scheduler), fixed jobs as Ray tasks.  ``resources``: the ``[ray]`` table (CPUs/GPUs per trial, at most
    ``max_concurrent`` at once, ``address``/``num_cpus``, and for studies ``scheduler``/``grace_epochs``/
    ``reduction_factor``)."""

    name = "ray"

    def run_study(self, run: StudyRun) -> RunResult:
        """Run trials with Ray Tune until the study is full or the deadline passes (a scheduler such as ASHA
        may stop trials early: they are PRUNED with the epochs they trained)."""
        from ray import tune

        r = self.resources
        ensure_ray(r.address or None, num_cpus=r.num_cpus or None)
        stats: dict[str, Any] = {"max_concurrent": 0, "stopped_by_failures": False}
        task = run.task
        searcher = _make_searcher(run, stats)
        trainable = tune.with_resources(tune.with_parameters(_trainable, task=task),
                                        {"cpu": r.cpus_per_trial, "gpu": r.gpus_per_trial})
        # With a search algorithm Tune keeps ONE trial pending at a time, so filling a cluster takes one actor
        # start per trial; let it request as many as can run at once (the searcher's constant liar covers them).
        os.environ.setdefault("TUNE_MAX_PENDING_TRIALS_PG", str(_fits_at_once(r.cpus_per_trial, r.gpus_per_trial,
                                                                              r.max_concurrent)))
        study_dir = Path(run.study_dir or ".")
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(search_alg=searcher, scheduler=self._scheduler(task), num_samples=-1,
                                        max_concurrent_trials=r.max_concurrent or None, reuse_actors=True),
            run_config=tune.RunConfig(name="ray", storage_path=str(study_dir.resolve()), verbose=0,
                                      callbacks=[_callback(stats)], log_to_file=False),
        )
        previous = _sigterm_as_interrupt()
        try:
            tuner.fit()
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
            slots = getattr(searcher, "slots", None)
            if slots is not None:
                slots.heartbeat.close()
        loop = getattr(searcher, "loop", None)
        res = loop.result if loop is not None else None
        return RunResult(ran=res.ran if res else 0, failed=res.failed if res else 0,
                         stopped_by_failures=bool(stats.get("stopped_by_failures")),
                         exhausted=bool(slots is not None and slots.exhausted),
                         max_concurrent=int(stats.get("max_concurrent", 0)))

    def _scheduler(self, task: StudyTask) -> Any:
        """ASHA or the median stopping rule on the study's first metric, from ``[ray] scheduler`` (None: none)."""
        kind = getattr(self.resources, "scheduler", "none")
        if kind == "none":
            return None
        metric, mode = task.objective.metric_names[0], task.objective.modes[0]
        epochs = _epochs(task) or 1
        grace = getattr(self.resources, "grace_epochs", 1)
        if kind == "asha":
            from ray.tune.schedulers import ASHAScheduler

            return ASHAScheduler(time_attr="epoch", metric=metric, mode=mode, max_t=max(1, epochs),
                                 grace_period=grace,
                                 reduction_factor=getattr(self.resources, "reduction_factor", 3))
        from ray.tune.schedulers import MedianStoppingRule

        return MedianStoppingRule(time_attr="epoch", metric=metric, mode=mode, grace_period=float(grace),
                                  min_samples_required=2)

    def run_jobs(self, jobs: Sequence[Job], *, on_result: Callable[[JobResult], None] | None = None,
                 cache_dir: str | None = None, checkpoint_dir: str | None = None,
                 on_epoch: Callable[[str, Any], None] | None = None, workers: int = 1) -> list[JobResult]:
        """Each job a Ray task with ``cpus_per_trial``/``gpus_per_trial`` (fractional GPUs allowed), at most
        ``max_concurrent`` at a time; ``workers`` and ``on_epoch`` do not apply."""
        import ray

        r = self.resources
        ensure_ray(r.address or None)
        remote = ray.remote(num_cpus=r.cpus_per_trial, num_gpus=r.gpus_per_trial, max_retries=0)(run_one)
        by_key: dict[str, JobResult] = {}
        pending: dict[Any, Job] = {}
        queue = list(jobs)
        limit = r.max_concurrent or len(jobs) or 1
        try:
            while queue or pending:
                while queue and len(pending) < limit:
                    job = queue.pop(0)
                    pending[remote.remote(job, cache_dir, checkpoint_dir)] = job
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    job = pending.pop(ref)
                    try:
                        res = ray.get(ref)
                    except Exception as exc:  # worker died (node lost, killed for memory): not the job's fault
                        res = JobResult(job.key, False, None,
                                        f"{INTERRUPTED}: the Ray worker died: {reason(exc)}"[:500], 0.0,
                                        interrupted=True)
                    by_key[job.key] = res
                    if on_result is not None:
                        on_result(res)
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)
        return [by_key[j.key] for j in jobs]


__all__ = ["RayBackend", "ensure_ray", "outcome_from_result", "quiet_ray_env"]

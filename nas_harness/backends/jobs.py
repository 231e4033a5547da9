"""Run a fixed list of (arch, seed) trials — no search — locally or on Ray (used by the ablation runner).

Every job goes through :func:`nas_harness.trial.run_trial`, the same function the search backends use.
Results (trial records) reach ``on_result`` in the driver process as each job finishes, so callers can persist them
incrementally and resume after a crash.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas_harness.backends._task import reason
from nas_harness.records import INTERRUPTED, TrialRecord
from nas_harness.trial import ResultCache, TrialSpec, run_trial


@dataclass(frozen=True)
class Job:
    """One fixed trial: a caller-chosen unique ``key`` and its :class:`TrialSpec`."""

    key: str
    spec: TrialSpec


@dataclass
class JobResult:
    """Outcome of one job: the ``record`` from ``run_trial`` when ``ok``, else ``error`` ('Type: message');
    ``interrupted`` when the worker died (not the job's fault: it may be run again)."""

    key: str
    ok: bool
    record: TrialRecord | None
    error: str | None
    wall_s: float
    interrupted: bool = False


def _run_one(job: Job, cache_dir: str | None, checkpoint_dir: str | None = None,
             report: Callable[[Any], None] | None = None) -> JobResult:
    t0 = time.perf_counter()
    cache = ResultCache(Path(cache_dir)) if cache_dir else None
    try:
        record = run_trial(job.spec, report=report, cache=cache, checkpoint_dir=checkpoint_dir)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # a failing job is a result, the others go on
        return JobResult(job.key, False, None, reason(exc), time.perf_counter() - t0)
    return JobResult(job.key, True, record, None, time.perf_counter() - t0)


def run_jobs(jobs: Sequence[Job], *, backend: str = "local", cpus_per_job: float = 1.0, gpus_per_job: float = 0.0,
             max_concurrent: int | None = None, ray_address: str | None = None,
             on_result: Callable[[JobResult], None] | None = None,
             cache_dir: str | Path | None = None, checkpoint_dir: str | Path | None = None,
             on_epoch: Callable[[str, Any], None] | None = None, workers: int = 1) -> list[JobResult]:
    """Run ``jobs`` and return their results in the order of ``jobs``.

    ``backend='local'`` runs them in this process, one after another (``workers=1``), or in ``workers``
    worker processes at once (0: as many as the cores allow at the jobs' threads); ``'ray'`` runs each as a Ray
    task with ``cpus_per_job``/``gpus_per_job`` (fractional GPUs allowed), at most ``max_concurrent`` at a time.
    ``on_result`` is always called in this process, as each job finishes.
    ``checkpoint_dir`` (a path every worker can reach) makes each job resumable mid-training.
    ``on_epoch(key, EpochReport)`` follows training epoch by epoch (one local worker only: other workers and
    Ray tasks report when they finish).
    """
    keys = [j.key for j in jobs]
    if len(set(keys)) != len(keys):
        from nas_harness.errors import ConfigError

        dup = next(k for k in keys if keys.count(k) > 1)
        raise ConfigError(f"jobs: duplicate key {dup!r}; every job needs a unique key")
    cdir = str(cache_dir) if cache_dir is not None else None
    kdir = str(Path(checkpoint_dir).resolve()) if checkpoint_dir is not None else None
    if backend == "local" and workers != 1 and len(jobs) > 1:
        from nas_harness.backends._procs import default_workers

        threads = max((j.spec.train.threads for j in jobs if isinstance(j.spec.train.threads, int)), default=1)
        n = min(len(jobs), workers or default_workers(threads, jobs[0].spec.train.device))
        if n > 1:
            return _run_pool(jobs, n, on_result, cdir, kdir)
    if backend == "local":
        results = []
        for job in jobs:
            report = functools.partial(on_epoch, job.key) if on_epoch is not None else None
            res = _run_one(job, cdir, kdir, report)
            if on_result is not None:
                on_result(res)
            results.append(res)
        return results
    if backend != "ray":
        from nas_harness.errors import ConfigError

        raise ConfigError(f"backend: {backend!r}; allowed values: 'local', 'ray'")
    return _run_ray(jobs, cpus_per_job, gpus_per_job, max_concurrent, ray_address, on_result, cdir, kdir)


def _run_pool(jobs: Sequence[Job], n: int, on_result: Callable[[JobResult], None] | None, cache_dir: str | None,
              checkpoint_dir: str | None) -> list[JobResult]:
    """Jobs in ``n`` worker processes; results reach ``on_result`` here as they finish.  Ctrl-C stops every
    worker; jobs not finished are not stored (with ``checkpoint_dir`` they resume from their last epoch)."""
    import os
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    from nas_harness.backends._procs import spawn_context, worker_environment, worker_setup

    by_key: dict[str, JobResult] = {}
    with worker_environment():
        pool = ProcessPoolExecutor(max_workers=n, mp_context=spawn_context(), initializer=worker_setup,
                                   initargs=(os.getpid(),))
    try:
        pending = {pool.submit(_run_one, job, cache_dir, checkpoint_dir): job for job in jobs}
        while pending:
            done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for fut in done:
                job = pending.pop(fut)
                try:
                    res = fut.result()
                except BrokenProcessPool as exc:  # a worker was killed: not the job's fault, run it again later
                    error = f"{INTERRUPTED}: its worker process died: {reason(exc)}"[:500]
                    res = JobResult(job.key, False, None, error, 0.0, interrupted=True)
                by_key[job.key] = res
                if on_result is not None:
                    on_result(res)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return [by_key[j.key] for j in jobs]


def _run_ray(jobs: Sequence[Job], cpus: float, gpus: float, max_concurrent: int | None, address: str | None,
             on_result: Callable[[JobResult], None] | None, cache_dir: str | None,
             checkpoint_dir: str | None = None) -> list[JobResult]:
    import ray

    from nas_harness.backends.ray import ensure_ray

    ensure_ray(address)
    remote = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=0)(_run_one_in_worker)
    by_key: dict[str, JobResult] = {}
    pending: dict[Any, Job] = {}
    queue = list(jobs)
    limit = max_concurrent or len(jobs) or 1
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
                    res = JobResult(job.key, False, None, f"{INTERRUPTED}: the Ray worker died: {reason(exc)}"[:500],
                                    0.0, interrupted=True)
                by_key[job.key] = res
                if on_result is not None:
                    on_result(res)
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
    return [by_key[j.key] for j in jobs]


def _run_one_in_worker(job: Job, cache_dir: str | None, checkpoint_dir: str | None = None) -> JobResult:
    return _run_one(job, cache_dir, checkpoint_dir)

"""Local backend: trials in this process, or in worker processes on this machine.

A study's trials run through the one trial loop (:class:`~nas_harness.backends.loop.TrialLoop`): in this
process with one worker, or in ``workers`` fresh processes on the same storage
(:mod:`nas_harness.backends._workers`).  Each finished trial is committed to the study's storage before the
next one starts, so killing a process loses at most the trial in flight; that trial is failed with a reason and
its arch queued again, by the process itself on Ctrl-C, or by the next worker that looks (immediately on the
same machine).  Fixed jobs run one after another here, or in a pool of worker processes.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from typing import Any

from nas_harness.backends._backend import Backend, RunResult, StudyRun, register_backend
from nas_harness.backends._task import StudyTask, reason
from nas_harness.backends.jobs import Job, JobResult, run_one
from nas_harness.backends.loop import LoopResult, TrialLoop
from nas_harness.records import INTERRUPTED, TrialSlots

__all__ = ["LocalBackend", "run_local"]


@register_backend
class LocalBackend(Backend):
    """This machine: one trial loop in this process, or ``workers`` worker processes."""

    name = "local"

    def run_study(self, run: StudyRun) -> RunResult:
        if run.workers > 1 and run.open_worker is not None:
            from nas_harness.backends._workers import run_worker_processes

            res = run_worker_processes(run.open_worker, run.study, run.workers, deadline=run.deadline,
                                       max_failures=run.max_failures, progress=run.progress, log=run.log,
                                       on_stored=run.on_stored)
            if res.fatal is not None:  # a full disk / failing file system under the storage
                from nas_harness.records import storage_label

                code, filename = res.fatal
                raise OSError(code, os.strerror(code), filename or storage_label(run.study).removeprefix("sqlite:///"))
            if res.interrupted:
                raise KeyboardInterrupt
            return RunResult(ran=res.ran, failed=res.failed, stopped_by_failures=res.stopped_by_failures,
                             exhausted=res.exhausted, max_concurrent=run.workers if res.ran else 0)
        slots = run.slots_for(run.study)
        try:
            loop = TrialLoop(run.study, run.task, slots, max_failures=run.max_failures, progress=run.progress,
                             log=run.log, on_stored=run.on_stored)
            res1 = loop.run(run.deadline)
        finally:
            slots.heartbeat.close()
        return RunResult(ran=res1.ran, failed=res1.failed, stopped_by_failures=res1.stopped_by_failures,
                         exhausted=slots.exhausted, max_concurrent=1 if res1.ran else 0)

    def run_jobs(self, jobs: Sequence[Job], *, on_result: Callable[[JobResult], None] | None = None,
                 cache_dir: str | None = None, checkpoint_dir: str | None = None,
                 on_epoch: Callable[[str, Any], None] | None = None, workers: int = 1) -> list[JobResult]:
        """One after another in this process (``workers=1``, with per-epoch ``on_epoch``), or in ``workers``
        worker processes (0: as many as the cores allow at the jobs' threads; more than the cores allow, or than
        there are jobs, are cut to that with a warning: :func:`~nas_harness.backends.fit_workers`)."""
        if workers != 1 and len(jobs) > 1:
            import warnings

            from nas_harness.backends._procs import fit_workers

            threads = max((j.spec.train.threads for j in jobs if isinstance(j.spec.train.threads, int)), default=1)
            n, note = fit_workers(workers, threads, jobs[0].spec.train.device, len(jobs), what="jobs",
                                  setting="workers")
            if note:  # more processes than cores (or jobs): one line, and no core runs two threads
                warnings.warn(note, stacklevel=2)
            if n > 1:
                return _run_pool(jobs, n, on_result, cache_dir, checkpoint_dir)
        results = []
        for job in jobs:
            report = functools.partial(on_epoch, job.key) if on_epoch is not None else None
            res = run_one(job, cache_dir, checkpoint_dir, report)
            if on_result is not None:
                on_result(res)
            results.append(res)
        return results


def run_local(study: Any, task: StudyTask, slots: TrialSlots, *, deadline: float | None = None,
              max_failures: int = 0, progress: Any = None, log: Callable[[str], None] = print,
              on_stored: Callable[[Any], None] | None = None) -> LoopResult:
    """The trial loop in this process on ``slots`` (see :meth:`TrialLoop.run`)."""
    return TrialLoop(study, task, slots, max_failures=max_failures, progress=progress, log=log,
                     on_stored=on_stored).run(deadline)


def _run_pool(jobs: Sequence[Job], n: int, on_result: Callable[[JobResult], None] | None, cache_dir: str | None,
              checkpoint_dir: str | None) -> list[JobResult]:
    """Jobs in ``n`` worker processes; results reach ``on_result`` here as they finish.  Ctrl-C (or SIGTERM)
    stops every worker; jobs not finished are not stored (with ``checkpoint_dir`` they resume from their last
    epoch)."""
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    from nas_harness.backends._procs import spawn_context, worker_environment, worker_setup

    by_key: dict[str, JobResult] = {}
    with worker_environment():
        pool = ProcessPoolExecutor(max_workers=n, mp_context=spawn_context(), initializer=worker_setup,
                                   initargs=(os.getpid(),))
    try:
        pending = {pool.submit(run_one, job, cache_dir, checkpoint_dir): job for job in jobs}
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
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):  # Ctrl-C or SIGTERM: a signal sent to this process alone is passed on
            from nas_harness.backends._procs import pass_interrupt_on

            pass_interrupt_on(list(getattr(pool, "_processes", None) or {}))
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return [by_key[j.key] for j in jobs]

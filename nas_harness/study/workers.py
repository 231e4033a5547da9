"""Several local workers on one study: parallel trials before intra-op threads.

``search --workers N`` (default: as many as the cores allow at the study's threads per trial) starts N worker
processes on the study's storage.  Each runs the ordinary local trial loop
(:func:`nas_harness.backends.local.run_local`) with the concurrency guarantees every worker has
(:class:`~nas_harness.records.TrialSlots`: together they finish exactly ``n_trials``; a dead worker's trial is
failed and its arch queued again).  This process starts them, shows one progress bar and prints their lines;
Ctrl-C reaches every worker (each fails and re-queues its trial in flight), so nothing finished is lost.

Numbers do not depend on the number of workers: a trial's result depends only on its arch, the recipe (thread
count included) and the seed.  A model-based sampler proposes from the shared history, so with several
workers it may propose other archs than one worker would (each worker's sampler is seeded ``seed + index``).
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nas_harness.backends._procs import default_workers, spawn_context, worker_environment, worker_setup
from nas_harness.backends.local import SLOW_WARNING

__all__ = ["WorkersResult", "default_workers", "run_workers"]


@dataclass
class WorkersResult:
    """What the workers did together."""

    ran: int = 0
    failed: int = 0
    exhausted: bool = False
    stopped_by_failures: bool = False
    interrupted: bool = False
    exit_codes: list[int | None] = field(default_factory=list)
    said_slow: bool = False


class _QueueProgress:
    """Stands in for the progress bar inside a worker: tells the parent which trial finished."""

    def __init__(self, q: Any) -> None:
        self.q = q

    def update(self, study: Any, trial: Any | None = None) -> None:
        if trial is not None:
            self.q.put(("trial", trial._trial_id))


def _worker_main(cfg_dict: dict[str, Any], threads: int | str, index: int, target: int,
                 grid: list[dict[str, Any]] | None, deadline: float | None, max_failures: int, q: Any,
                 parent: int, first: int = 0) -> None:
    """One worker process: the study's trial loop until the study has its trials, the deadline, or Ctrl-C."""
    worker_setup(parent)
    import optuna

    from nas_harness.backends.local import run_local
    from nas_harness.records import Heartbeat, StorageLock, TrialSlots, open_storage
    from nas_harness.study.config import StudyConfig
    from nas_harness.study.samplers import make_pruner, make_sampler
    from nas_harness.study.search import build_task

    def log(msg: str) -> None:
        q.put(("log", msg))

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    slots = None
    try:
        cfg = StudyConfig.from_dict(cfg_dict)
        task = build_task(cfg, threads)
        if task.evaluator is not None:  # idempotent: finds what the parent prepared
            task.evaluator.prepare(cfg.eval_context(task.train), lambda msg: None)
        pruner = make_pruner(cfg.pruner) if cfg.objective.kind != "multi" else None
        study = optuna.load_study(study_name=cfg.name, storage=open_storage(cfg.storage_url), pruner=pruner)
        # each worker its own draws, and a continued study new ones (see search.sampler_offset)
        study.sampler = make_sampler(cfg.sampler, cfg.objective, cfg.seed + index + first, task.space)
        slots = TrialSlots(study, target, StorageLock(cfg.storage_url), Heartbeat(study._storage, cfg.run.heartbeat_s),
                           task.params_of_arch, candidates=grid, key=lambda p: str(task.space.arch_from_params(p)),
                           log=log)
        res = run_local(study, task, slots, deadline=deadline, max_failures=max_failures,
                        progress=_QueueProgress(q), log=log)
        q.put(("done", index, res.ran, res.failed, slots.exhausted, res.stopped_by_failures, False))
    except KeyboardInterrupt:
        q.put(("done", index, 0, 0, False, False, True))
    except Exception as exc:
        from nas_harness.backends._task import reason

        q.put(("log", f"worker {index} stopped: {reason(exc)}"))
        q.put(("done", index, 0, 0, False, False, False))
    finally:
        if slots is not None:
            slots.heartbeat.close()


def run_workers(cfg: Any, study: Any, n: int, threads: int | str, *, target: int,
                grid: list[dict[str, Any]] | None, deadline: float | None, max_failures: int, progress: Any,
                log: Callable[[str], None], on_stored: Callable[[Any], None] | None = None) -> WorkersResult:
    """Run ``n`` worker processes on ``cfg``'s study until it has ``target`` finished trials (or the deadline,
    or ``max_failures`` failed trials in one worker); ``progress.update(study, frozen_trial)``,
    ``on_stored(frozen_trial)`` (experiment trackers) and ``log(line)`` are called here as the workers report.
    KeyboardInterrupt reaches every worker; the result then says ``interrupted``."""
    ctx = spawn_context()
    q = ctx.Queue()
    cfg_dict = cfg.to_dict()
    if cfg.run.storage == "":
        cfg_dict["run"]["storage"] = ""
    with worker_environment():
        procs = [ctx.Process(target=_worker_main, name=f"nas-harness-worker-{i}",
                             args=(cfg_dict, threads, i, target, grid, deadline, max_failures, q, os.getpid(),
                                   len(study.get_trials(deepcopy=False))))
                 for i in range(n)]
        for p in procs:
            p.start()
    out = WorkersResult()
    finished: set[int] = set()
    try:
        _drain(q, procs, finished, study, progress, log, out, on_stored)
    except KeyboardInterrupt:
        out.interrupted = True
        for p in procs:  # a terminal sends SIGINT to every worker; a signal to this process alone is passed on
            if p.is_alive() and p.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGINT)
        try:
            _drain(q, procs, finished, study, progress, log, out, on_stored)
        except KeyboardInterrupt:  # a second Ctrl-C: stop waiting for them
            for p in procs:
                p.kill()
    for p in procs:
        p.join(timeout=30)
        if p.is_alive():
            p.kill()
            p.join()
    out.exit_codes = [p.exitcode for p in procs]
    for i, code in enumerate(out.exit_codes):
        if i not in finished and code not in (0, None):
            log(f"worker {i} ended with exit code {code}; its trial in flight (if any) is failed as interrupted and "
                "its arch queued again, for the other workers or the next run")
    return out


def _drain(q: Any, procs: list[Any], finished: set[int], study: Any, progress: Any, log: Callable[[str], None],
           out: WorkersResult, on_stored: Callable[[Any], None] | None = None) -> None:
    """Handle the workers' messages until every worker has ended and the queue is empty."""
    while True:
        try:
            msg = q.get(timeout=0.5)
        except queue.Empty:
            if all(not p.is_alive() for p in procs):
                # a worker killed hard sends nothing more; give the queue's feeder threads a moment, then stop
                time.sleep(0.2)
                if q.empty():
                    return
            continue
        kind = msg[0]
        if kind == "log":
            if msg[1].startswith("waiting: "):  # near the end, siblings' trials fill the study: nothing to say
                continue
            if msg[1].startswith(SLOW_WARNING):  # every worker would say it: once is enough
                if out.said_slow:
                    continue
                out.said_slow = True
            log(msg[1])
        elif kind == "trial":
            frozen = study._storage.get_trial(msg[1])
            progress.update(study, frozen)
            if on_stored is not None:
                on_stored(frozen)
        elif kind == "done":
            _, index, ran, failed, exhausted, stopped, interrupted = msg
            finished.add(index)
            out.ran += ran
            out.failed += failed
            out.exhausted = out.exhausted or exhausted
            out.stopped_by_failures = out.stopped_by_failures or stopped
            out.interrupted = out.interrupted or interrupted

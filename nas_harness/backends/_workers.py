"""Several local worker processes on one study: parallel trials before intra-op threads.

The local backend with ``workers > 1`` starts that many worker processes on the study's storage.  Each opens the
study through the caller's ``open_worker`` function and runs the one trial loop
(:class:`~nas_harness.backends.loop.TrialLoop`) with the concurrency guarantees every worker has
(:class:`~nas_harness.records.TrialSlots`: together they finish exactly ``n_trials``; a dead worker's trial is
failed and its arch queued again).  This process starts them, shows one progress bar and prints their lines;
Ctrl-C reaches every worker (each fails and re-queues its trial in flight), so nothing finished is lost.
"""

from __future__ import annotations

import importlib
import os
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nas_harness.backends._procs import (
    WorkerMessages,
    pass_interrupt_on,
    spawn_context,
    worker_environment,
    worker_setup,
)
from nas_harness.backends.loop import SLOW_WARNING, TrialLoop


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
    fatal: tuple[int, str | None] | None = None  # (errno, file) of a full disk or failing file system a worker met


class _QueueProgress:
    """Stands in for the progress bar inside a worker: tells the parent which trial finished."""

    def __init__(self, q: Any) -> None:
        self.q = q

    def update(self, study: Any, trial: Any | None = None) -> None:
        if trial is not None:
            self.q.put(("trial", trial._trial_id))


def _worker_main(open_worker: tuple[str, str, tuple[Any, ...]], index: int, deadline: float | None,
                 max_failures: int, q: Any, parent: int) -> None:
    """One worker process: the study's trial loop until the study has its trials, the deadline, Ctrl-C or
    SIGTERM."""
    worker_setup(parent, sigterm=True)

    def log(msg: str) -> None:
        q.put(("log", msg))

    slots = None
    try:
        module, function, args = open_worker
        study, task, slots = getattr(importlib.import_module(module), function)(*args, index=index, log=log)
        res = TrialLoop(study, task, slots, max_failures=max_failures, progress=_QueueProgress(q), log=log).run(
            deadline)
        q.put(("done", index, res.ran, res.failed, slots.exhausted, res.stopped_by_failures, False))
    except KeyboardInterrupt:
        q.put(("done", index, 0, 0, False, False, True))
    except Exception as exc:
        from nas_harness.backends._task import reason
        from nas_harness.errors import environment_error

        env = environment_error(exc)
        if env is not None:  # the disk, not the worker: the command ends with the one line for it (exit 2)
            q.put(("fatal", env.errno, env.filename))
        else:
            q.put(("log", f"worker {index} stopped: {reason(exc)}"))
        q.put(("done", index, 0, 0, False, False, False))
    finally:
        if slots is not None:
            slots.heartbeat.close()


def run_worker_processes(open_worker: tuple[str, str, tuple[Any, ...]], study: Any, n: int, *,
                         deadline: float | None, max_failures: int, progress: Any, log: Callable[[str], None],
                         on_stored: Callable[[Any], None] | None = None) -> WorkersResult:
    """Run ``n`` worker processes on ``study`` until it has its trials (or the deadline, or ``max_failures``
    failed trials in one worker); ``progress.update(study, frozen_trial)``, ``on_stored(frozen_trial)``
    (experiment trackers) and ``log(line)`` are called here as the workers report.  KeyboardInterrupt reaches
    every worker; the result then says ``interrupted``."""
    ctx = spawn_context()
    q = WorkerMessages(n)  # one pipe per worker: no named semaphores for a killed parent to leak
    with worker_environment():
        procs = [ctx.Process(target=_worker_main, name=f"nas-harness-worker-{i}",
                             args=(open_worker, i, deadline, max_failures, q.sender(i), os.getpid()))
                 for i in range(n)]
        for p in procs:
            p.start()
    q.senders_started()
    out = WorkersResult()
    finished: set[int] = set()
    try:
        _drain(q, procs, finished, study, progress, log, out, on_stored)
    except KeyboardInterrupt:
        out.interrupted = True
        # a terminal sends SIGINT to every worker; a signal to this process alone (SIGTERM too) is passed on
        pass_interrupt_on(p.pid for p in procs if p.is_alive())
        try:
            _drain(q, procs, finished, study, progress, log, out, on_stored)
        except KeyboardInterrupt:  # a second Ctrl-C or SIGTERM: stop waiting for them (finished trials are stored)
            for p in procs:
                p.kill()
    for p in procs:
        p.join(timeout=30)
        if p.is_alive():
            p.kill()
            p.join()
    q.close()
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
        elif kind == "fatal":
            out.fatal = out.fatal or (msg[1], msg[2])
        elif kind == "done":
            _, index, ran, failed, exhausted, stopped, interrupted = msg
            finished.add(index)
            out.ran += ran
            out.failed += failed
            out.exhausted = out.exhausted or exhausted
            out.stopped_by_failures = out.stopped_by_failures or stopped
            out.interrupted = out.interrupted or interrupted

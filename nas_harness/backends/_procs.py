"""Worker processes on this machine: how they start (fresh interpreters with passive OpenMP waiting), die with
the process that started them, take Ctrl-C once, and send their messages back (:class:`WorkerMessages`)."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import sys
import threading
from collections import deque
from typing import Any

from nas_harness.backends.settings import passive_wait_env
from nas_harness.errors import quiet_cleanup_after_interrupt


def die_with_parent(parent: int) -> None:
    """Linux: this process is killed when ``parent`` dies (even by SIGKILL), so a killed command leaves no worker
    behind; a worker's trial in flight is then failed and retried like any dead worker's."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def interrupt_once(sigterm: bool = False) -> None:
    """Ctrl-C may reach a worker twice (from the terminal, and passed on by its parent): the first raises
    KeyboardInterrupt, later ones are ignored so the worker's clean-up finishes.

    ``sigterm``: SIGTERM is taken the same way (noted as SIGTERM, so the trial in flight is failed as stopped by
    it): for the trial loop's workers, which SLURM, systemd and ``docker stop`` signal together with their
    parent.  A process pool's workers keep SIGTERM's default: the pool ends a broken pool's workers with it,
    and one that took it as an interrupt would go on to run the jobs already queued to it.  A signal ignored
    when the command started (a shell script's ``cmd &`` starts it with SIGINT ignored; workers inherit that)
    stays ignored, as it does in the command's own process."""
    watched = (signal.SIGINT, signal.SIGTERM) if sigterm else (signal.SIGINT,)

    def handler(signum: int, frame: Any) -> None:
        from nas_harness.errors import note_interrupt

        note_interrupt(signum)
        for s in watched:
            signal.signal(s, signal.SIG_IGN)
        raise KeyboardInterrupt

    for s in watched:
        if signal.getsignal(s) is not signal.SIG_IGN:  # ignored at launch (a script's `cmd &`): stays ignored
            signal.signal(s, handler)
    quiet_cleanup_after_interrupt()  # SQLAlchemy's "Error closing cursor" traceback of the interrupted query

    def unraisable(info: Any) -> None:  # a Ctrl-C landing in a gc callback is noted, not printed
        if not isinstance(info.exc_value, KeyboardInterrupt):
            sys.__unraisablehook__(info)

    sys.unraisablehook = unraisable


def pass_interrupt_on(pids: Any) -> None:
    """Send the signal that stopped this process (SIGINT for Ctrl-C, SIGTERM) to each of the worker processes
    ``pids`` still running: a terminal's Ctrl-C reaches them all, but a signal sent to this process alone
    (``kill``, ``docker stop``) must be passed on; each stops once (:func:`interrupt_once`; a process pool's
    worker simply ends on SIGTERM)."""
    from nas_harness.errors import interrupt_signal

    for pid in pids:
        if pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, interrupt_signal())


def worker_setup(parent: int, sigterm: bool = False) -> None:
    """What every worker process does first (``sigterm``: see :func:`interrupt_once`)."""
    die_with_parent(parent)
    interrupt_once(sigterm)


@contextlib.contextmanager
def worker_environment() -> Any:
    """Workers started inside this block inherit passive OpenMP waiting (see ``passive_wait_env``)."""
    extra = passive_wait_env()
    saved = {k: os.environ.get(k) for k in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def spawn_context() -> Any:
    """Fresh interpreters: no inherited torch, OpenMP or Ray state."""
    import multiprocessing

    return multiprocessing.get_context("spawn")


def _on_gpu(device: str) -> bool:
    if device.startswith("cuda"):
        return True
    if device == "auto":
        import torch

        return bool(torch.cuda.is_available())
    return False


def default_workers(threads: int, device: str = "cpu") -> int:
    """Workers that fit this machine: the usable cores divided by the threads per trial (one per process on a
    GPU, where ``--device cuda:N`` starts one per GPU)."""
    from nas_harness.train.trainer import usable_cores

    if _on_gpu(device):
        return 1
    return max(1, usable_cores() // max(1, int(threads)))


def fit_workers(requested: int, threads: int, device: str, pending: int, *, what: str = "trials",
                setting: str = "run.workers") -> tuple[int, str | None]:
    """How many worker processes to start for ``pending`` trials or jobs at ``threads`` threads each, and the
    one line that says why it is fewer than asked (None when it is not), e.g. ``"run.workers = 64: 64 workers x
    1 thread(s) per trial would oversubscribe the 2 usable core(s), so 2 run at once"``.

    ``requested`` 0 means as many as fit (:func:`default_workers`).  A request is never allowed to oversubscribe
    the cores on a CPU device: workers x threads per trial stays within the usable cores (the process's
    affinity mask), so an explicit ``run.workers = 64`` on a 2-core machine runs 2 workers at 1 thread, with a
    note naming the cores.  More workers than ``pending`` would have nothing to do: the count is cut to it
    (said too when an explicit request was cut).  ``setting`` names the request in the note (``run.workers``)."""
    from nas_harness.train.trainer import usable_cores

    threads = max(1, int(threads))
    if requested <= 0:
        return max(1, min(default_workers(threads, device), pending)), None
    n = requested
    notes = []
    if not _on_gpu(device):
        cores = usable_cores()
        fit = max(1, cores // threads)
        if n > fit:
            notes.append(f"{n} workers x {threads} thread(s) per {what.removesuffix('s')} would oversubscribe the "
                         f"{cores} usable core(s), so {fit} run at once")
            n = fit
    if n > max(1, pending):
        notes.append(f"only {pending} {what if pending != 1 else what.removesuffix('s')} to go, so "
                     f"{max(1, pending)} worker{'s' if pending > 1 else ''}")
        n = max(1, pending)
    if not notes:
        return n, None
    return n, f"{setting} = {requested}: " + "; ".join(notes)


class MessageSender:
    """A worker's end of :class:`WorkerMessages`: ``put(message)`` (any picklable object), safe from several
    threads of the worker.  Pass it to the worker process as an argument."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {"conn": self._conn}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["conn"])  # type: ignore[misc]

    def put(self, message: Any) -> None:
        with self._lock:
            self._conn.send(message)


class WorkerMessages:
    """Messages from ``n`` worker processes to the process that started them, with the reading side of a
    ``multiprocessing.Queue`` (``get(timeout)`` raising ``queue.Empty``, ``empty()``).

    One pipe per worker, so nothing is shared between writers and no lock is needed across processes.  A
    ``Queue`` of a spawn context holds three *named* POSIX semaphores registered with Python's resource tracker;
    when the process holding it is killed (``kill -9``) they are never released, and the tracker prints
    "resource_tracker: There appear to be 3 leaked semaphore objects to clean up at shutdown" to the terminal
    after the command has ended.  (A worker killed while writing to a shared Queue can also leave its write lock
    held, blocking every other worker.)  Pipes are plain file descriptors: a killed process leaves nothing
    behind, and a worker that dies mid-message only ends its own pipe.

    Usage: ``messages = WorkerMessages(n)``; start worker ``i`` with ``messages.sender(i)`` among its arguments;
    then ``get``/``empty`` here.  This process's copies of the writing ends are closed at the first ``get`` /
    ``empty`` (or by :meth:`senders_started`), so start every worker before reading: a worker that has ended
    then reads as an ended pipe, never as a wait.
    """

    def __init__(self, n: int) -> None:
        pairs = [spawn_context().Pipe(duplex=False) for _ in range(n)]
        self._readers = [r for r, _ in pairs]
        self._writers = [w for _, w in pairs]
        self._pending: deque[Any] = deque()

    def sender(self, index: int) -> MessageSender:
        """The writing end for worker ``index`` (0 <= index < n)."""
        return MessageSender(self._writers[index])

    def senders_started(self) -> None:
        """Every worker has started (holds its own copy of its writing end): close this process's copies."""
        for w in self._writers:
            w.close()
        self._writers = []

    def _read(self, timeout: float | None) -> None:
        from multiprocessing.connection import wait

        self.senders_started()
        for r in wait(self._readers, timeout):
            try:
                self._pending.append(r.recv())
            except (EOFError, OSError):  # the worker has ended (or died mid-message): its pipe is done
                self._readers.remove(r)
                r.close()

    def get(self, timeout: float | None = None) -> Any:
        """The next message of any worker (each worker's in the order it sent them), waiting up to ``timeout``
        seconds (None: until one comes or every worker has ended); ``queue.Empty`` when none came."""
        import time

        end = None if timeout is None else time.monotonic() + timeout
        while not self._pending and self._readers:  # an ended worker's pipe is no message: keep waiting
            left = None if end is None else max(0.0, end - time.monotonic())
            self._read(left)
            if left == 0.0:
                break
        if not self._pending:
            raise queue.Empty
        return self._pending.popleft()

    def empty(self) -> bool:
        """Whether no message is waiting now (an ended worker's pipe counts as empty once read to its end)."""
        while not self._pending and self._readers and any(r.poll() for r in self._readers):
            self._read(0)
        return not self._pending

    def close(self) -> None:
        """Close every pipe end still open here."""
        self.senders_started()
        for r in self._readers:
            r.close()
        self._readers = []

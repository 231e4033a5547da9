"""Exception types shared by every layer.

Bad *input* (arch strings, search spaces, study files, CLI arguments, data files) raises a subclass of
``ValueError`` whose message is one line naming the field and what is allowed; the CLI turns those into
``exit 2``.  Failures *while running a trial* raise :class:`TrialError` subclasses, which the search and
ablation runners record as a failed trial (with the message as the reason) before moving on.  Failures of the
*environment* (a full disk, a read-only or failing file system) are worded once, by :func:`environment_line`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
from collections.abc import Iterator


class HarnessError(Exception):
    """Base class of every error raised on purpose by nas-harness."""


class ConfigError(HarnessError, ValueError):
    """Invalid user input: an arch string, search space, study file or CLI argument."""


class DataError(HarnessError, ValueError):
    """A dataset is missing, corrupt or inconsistent; the message names the file."""


class TrialError(HarnessError, RuntimeError):
    """A trial failed in a way that should be recorded as FAIL (the study goes on)."""


class NonFiniteLossError(TrialError):
    """The training loss became NaN or infinite."""

    def __init__(self, step: int, loss: float) -> None:
        super().__init__(f"non-finite loss {loss} at step {step}")
        self.step = step
        self.loss = loss


class TrialOutOfMemoryError(TrialError):
    """The device ran out of memory; device memory has been released before this is raised."""

    def __init__(self, step: int, detail: str = "") -> None:
        msg = f"out of memory at step {step}"
        super().__init__(f"{msg}: {detail}" if detail else msg)
        self.step = step


# --- Ctrl-C (and SIGTERM) that Python could not deliver -----------------------------------------------------
# A SIGINT that arrives while Python runs a weakref or garbage-collector callback raises KeyboardInterrupt there,
# and Python only prints "Exception ignored" and goes on.  The command line's handler notes every Ctrl-C here;
# long loops call raise_if_interrupted() at their safe points, so a swallowed Ctrl-C still stops the run.
# SIGTERM (what SLURM, systemd, ``docker stop`` and ``kill`` send) is handled as a Ctrl-C and noted with its
# signal, so the stop is worded after it and the command exits 128 + its number (143).
_interrupted = False
_signal: int | None = None


def note_interrupt(signum: int = signal.SIGINT) -> None:
    """Record that the user pressed Ctrl-C, or that signal ``signum`` (SIGTERM) asked the command to stop
    (called from the signal handlers); the first signal noted is the one :func:`interrupt_signal` gives."""
    global _interrupted, _signal
    _interrupted = True
    if _signal is None:
        _signal = int(signum)


def raise_if_interrupted() -> None:
    """Raise KeyboardInterrupt if a Ctrl-C was noted (a safe point of a long loop)."""
    if _interrupted:
        raise KeyboardInterrupt


def interrupted() -> bool:
    """Whether a Ctrl-C (or SIGTERM) was noted in this process."""
    return _interrupted


def interrupt_signal() -> int:
    """The signal that stopped this process: the first one noted, else SIGINT (a KeyboardInterrupt is Ctrl-C)."""
    return signal.SIGINT if _signal is None else _signal


def interrupt_name() -> str:
    """How a stop is worded: ``'Ctrl-C'`` for SIGINT, else the signal's name (``'SIGTERM'``)."""
    signum = interrupt_signal()
    if signum == signal.SIGINT:
        return "Ctrl-C"
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def interrupt_exit_code() -> int:
    """The exit code of a stopped command, by the shell's convention 128 + the signal: 130 for Ctrl-C, 143 for
    SIGTERM."""
    return 128 + int(interrupt_signal())


#: Seconds after a held stop from which another one is delivered at once (see :func:`interrupts_held`).
REPEAT_STOP_S = 1.0


@contextlib.contextmanager
def interrupts_held() -> Iterator[None]:
    """Hold back Ctrl-C and SIGTERM inside the block and deliver them at its end (to the handler that was set).

    For a few storage calls that must not be cut in half: a trial created in the storage but not yet owned by
    its worker would be left RUNNING by a stop there, instead of failed as interrupted and queued again.  A
    signal that comes :data:`REPEAT_STOP_S` or more after the first is not held (a storage call that hangs can
    still be stopped; its trial is then left to the next run's dead-worker check); one that comes sooner is the
    same stop arriving twice (a worker gets a terminal's Ctrl-C and its parent's copy of it).  Only signals with
    a Python handler are held (a default SIGTERM still ends the process); off the main thread, where handlers
    cannot be set, nothing is held."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    delivered = False
    previous = {}

    first: list[float] = []

    def hold(signum: int, frame: object) -> None:
        nonlocal delivered
        held.append(signum)
        first.append(time.monotonic())
        if len(held) > 1 and not delivered and first[-1] - first[0] >= REPEAT_STOP_S:
            delivered = True  # asked again (the storage call hangs?): the stop is delivered now
            previous[held[0]](held[0], frame)

    for s in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(s)
        if callable(handler):
            previous[s] = signal.signal(s, hold)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if held and not delivered:
            previous[held[0]](held[0], None)  # the handler raises KeyboardInterrupt (after noting the signal)


def quiet_cleanup_after_interrupt() -> None:
    """After a Ctrl-C, drop SQLAlchemy's log records (idempotent).

    A Ctrl-C that lands while SQLAlchemy reads from the storage interrupts the query; SQLAlchemy then closes the
    interrupted cursor on a closed connection and logs "Error closing cursor" with two tracebacks, which Python
    prints to the terminal.  Nothing is lost (the trial is failed or left to the next run as with any Ctrl-C),
    so after an interrupt those records are dropped; before one, SQLAlchemy's warnings reach stderr as usual."""
    import logging

    log = logging.getLogger("sqlalchemy")
    if any(getattr(h, "_nas_harness_quiet", False) for h in log.handlers):
        return
    handler = logging.StreamHandler()  # stderr, like Python's last-resort handler it stands in for
    handler.setLevel(logging.WARNING)
    handler.addFilter(lambda record: not _interrupted)
    handler._nas_harness_quiet = True  # type: ignore[attr-defined]
    log.addHandler(handler)
    log.propagate = False


# --- The environment's failures: a full disk, a read-only or forbidden path, a failing file system ----------
# Written once here, for every layer: the storage (records), checkpoints (train), the compiled kernels' cache
# (kernels) and the command line (cli) word the same errno the same way.

#: How each environment errno is worded (the first words of every such message).
ENVIRONMENT_REASONS: dict[int, str] = {
    errno.ENOSPC: "the disk is full (no space left on the device)",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EFBIG: "the file is too large for the file system",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENAMETOOLONG: "the file name is too long",
    errno.EISDIR: "it is a folder, not a file",
    errno.ENOTDIR: "a part of the path is not a folder",
    errno.EIO: "input/output error (failing disk or lost network file system)",
}
#: OSError numbers that are the environment's doing (full, read-only, forbidden, failing), not a bug.
ENVIRONMENT_ERRNOS = frozenset(ENVIRONMENT_REASONS)
#: Of those, the ones met while writing ("... writing 'file'"; the others say "... at 'file'").
WRITING_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})
#: SQLite's words for a failing file system -> errno.
_SQLITE_ENV = {"database or disk is full": errno.ENOSPC, "attempt to write a readonly database": errno.EROFS,
               "disk i/o error": errno.EIO, "unable to open database file": errno.EACCES}


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, then its causes and contexts, breadth first, each once."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo and len(seen) < 50:
        e = todo.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [e.__cause__, e.__context__]


def environment_error(exc: BaseException, path: str | os.PathLike[str] | None = None) -> OSError | None:
    """An ``OSError`` (errno, message, file) for a full disk / read-only or failing file system anywhere in
    ``exc``'s chain, else None: an OSError keeps its own file name; SQLite's wording ("database or disk is
    full", ...) is given ``path``, the database file.  SQLite reports a full disk met while it creates its WAL
    file as a "disk I/O error" (or cannot open the file): with (almost) no free space left beside ``path``,
    that is called a full disk."""
    import sqlite3

    for e in exception_chain(exc):
        if isinstance(e, OSError) and e.errno in ENVIRONMENT_ERRNOS:
            return OSError(e.errno, os.strerror(e.errno), e.filename)
        if isinstance(e, sqlite3.Error):
            msg = str(e).lower()
            for needle, code in _SQLITE_ENV.items():
                if needle in msg:
                    if code in (errno.EIO, errno.EACCES) and path is not None and no_space_left(path):
                        code = errno.ENOSPC
                    elif code == errno.EACCES and path is not None and not read_only_file_system(
                            os.path.dirname(os.fspath(path)) or "."):
                        break  # a missing folder or a permission problem: not the environment's wording
                    return OSError(code, os.strerror(code), os.fspath(path) if path is not None else None)
    return None


def environment_reason(exc: BaseException, path: str | os.PathLike[str] | None = None) -> str | None:
    """The one wording of the environment failure in ``exc``'s chain (``'the disk is full (no space left on the
    device)'``), else None."""
    found = environment_error(exc, path)
    return None if found is None else ENVIRONMENT_REASONS[found.errno]


def environment_line(exc: BaseException, file: str | os.PathLike[str] | None = None, *,
                     path: str | os.PathLike[str] | None = None) -> str | None:
    """ONE line for the environment failure in ``exc``'s chain, else None: its wording and the file it met,
    ``"the disk is full (no space left on the device) writing '/results/study.db'"``.  The file is the
    OSError's own, else ``file``; ``path`` is the database file SQLite's wording refers to."""
    found = environment_error(exc, path)
    if found is None:
        return None
    where = found.filename if found.filename is not None else file
    verb = "writing" if found.errno in WRITING_ERRNOS else "at"
    return ENVIRONMENT_REASONS[found.errno] + (f" {verb} {os.fsdecode(where)!r}" if where is not None else "")


def os_reason(exc: BaseException) -> str:
    """Why an OSError happened, in words: the environment wording above where it applies, else the operating
    system's own (``strerror``), else the exception's text."""
    reason = environment_reason(exc)
    if reason is not None:
        return reason
    err = next((e for e in exception_chain(exc) if isinstance(e, OSError) and e.strerror), None)
    return err.strerror if err is not None else " ".join(str(exc).split())[:200]


def read_only_file_system(folder: str | os.PathLike[str]) -> bool:
    """Whether ``folder`` lies on a file system mounted read-only (False when it cannot be asked)."""
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def no_space_left(path: str | os.PathLike[str]) -> bool:
    """Whether (almost) no space is left beside the file ``path``."""
    try:
        st = os.statvfs(os.path.dirname(os.fspath(path)) or ".")
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < 64 * 1024

"""Concurrency by design: any number of workers on one study, each trial owned by one live worker.

The rules every runner follows (the local loop, each Ray driver):

1. **A slot, then a trial.**  Under the storage's :class:`~nas_harness.records.StorageLock`, a worker counts
   the study's finished (COMPLETE + PRUNED) and RUNNING trials and creates a new trial only while
   ``finished + running < n_trials``.  Running trials can only end as finished or failed, so the study never
   ends with more than ``n_trials`` finished trials; failed ones free their slot again.  A worker that finds
   no free slot waits while other workers' trials run (one of them may fail) and stops when the study is full.
2. **Ownership.**  A new trial records its owner (host, boot id, pid, process start time) and the owner
   refreshes a heartbeat every ``heartbeat_s`` from a background thread.
3. **Dead owners.**  Before creating a trial, a worker fails every RUNNING trial whose owner is gone: in the
   same PID namespace of the same machine (same host name, boot id and ``/proc/self/ns/pid``) when its
   process no longer exists (immediately); anywhere else (another machine, another container) when this
   worker has seen the owner's heartbeat value stay unchanged for 6 heartbeat intervals *of its own monotonic
   clock*.  No two machines' clocks are ever compared: the heartbeat is only a value that changes, and a
   worker whose clock is minutes ahead or behind is judged exactly like one whose clock agrees.
   The trial gets a ``fail_reason`` starting with ``interrupted:`` and its arch is queued again with the
   parameters it was *given* (Optuna's fixed parameters, or its recorded arch string; never a partial set),
   tagged ``retry_of`` and keeping its ``reference`` name; at most :data:`MAX_RETRIES` times per arch.
   Nothing ever fails a trial whose owner is alive.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from nas_harness.errors import interrupts_held
from nas_harness.records._record import INTERRUPTED
from nas_harness.records._storage import StorageLock, wait

OWNER_KEY = "nas:owner"
BEAT_KEY = "nas:heartbeat"
MISSED_BEATS = 6
MAX_RETRIES = 2
DONE = "done"

# Trial ids this process is running right now (a trial owned by this very process is stale when it is not
# among them: a runner that stopped without finishing it, e.g. an earlier run in the same Python session).
_ACTIVE: set[int] = set()
_ACTIVE_LOCK = threading.Lock()


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def _pid_namespace() -> str:
    """This process's PID namespace (``pid:[4026531836]``), '' where it cannot be read: two containers on one
    host share its host name and boot id but not their process ids."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def _proc_start(pid: int) -> int | None:
    """Start time of process ``pid`` in clock ticks since boot (/proc/<pid>/stat field 22), None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    try:
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (IndexError, ValueError):
        return None


@dataclass(frozen=True)
class WorkerId:
    """Who runs a trial: enough to tell, on the same machine, whether that process still exists."""

    host: str
    boot: str
    pid: int
    start: int | None
    interval: int
    pidns: str = ""  # PID namespace ('' = unknown: never judged by its process id)

    @classmethod
    def this(cls, interval: int) -> WorkerId:
        pid = os.getpid()
        return cls(socket.gethostname(), _boot_id(), pid, _proc_start(pid), int(interval), _pid_namespace())

    @classmethod
    def from_attr(cls, d: Any) -> WorkerId | None:
        try:
            interval = int(d.get("interval", 10))
            if not 1 <= interval <= 3600:
                return None
            return cls(str(d["host"]), str(d.get("boot", "")), int(d["pid"]),
                       int(d["start"]) if d.get("start") is not None else None, interval, str(d.get("pidns", "")))
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
            return None

    def to_attr(self) -> dict[str, Any]:
        return {"host": self.host, "boot": self.boot, "pid": self.pid, "start": self.start, "interval": self.interval,
                "pidns": self.pidns}

    @property
    def label(self) -> str:
        return f"{self.host}:{self.pid}"

    def alive_here(self, trial_id: int) -> bool | None:
        """True/False where it can be known from this process (same host, boot and PID namespace), else None."""
        if self.host != socket.gethostname() or not self.boot or self.boot != _boot_id():
            return None
        if not self.pidns or self.pidns != _pid_namespace():  # another container: its pids are not ours
            return None
        if self.pid == os.getpid() and self.start == _proc_start(os.getpid()):
            with _ACTIVE_LOCK:
                return trial_id in _ACTIVE
        start = _proc_start(self.pid)
        return start is not None and (self.start is None or start == self.start)


class Heartbeat:
    """Owns trials for this process and refreshes their heartbeat from a daemon thread."""

    def __init__(self, storage: Any, interval: int) -> None:
        self.storage = storage
        self.interval = max(1, int(interval))
        self.worker = WorkerId.this(self.interval)
        self._owned: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __getstate__(self) -> dict[str, Any]:  # pickled with a Tune searcher: a fresh, empty heartbeat
        return {"storage": self.storage, "interval": self.interval}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["storage"], state["interval"])  # type: ignore[misc]

    def own(self, trial_id: int) -> None:
        """Record this process as the trial's owner (call right after creating it, under the lock)."""
        with _ACTIVE_LOCK:
            _ACTIVE.add(trial_id)
        with self._lock:
            self._owned.add(trial_id)
        self.storage.set_trial_system_attr(trial_id, OWNER_KEY, self.worker.to_attr())
        self.storage.set_trial_system_attr(trial_id, BEAT_KEY, time.time())
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="nas-harness-heartbeat", daemon=True)
            self._thread.start()

    def owned(self) -> list[int]:
        """The trials this process owns now (created by it and not released)."""
        with self._lock:
            return sorted(self._owned)

    def release(self, trial_id: int) -> None:
        with self._lock:
            self._owned.discard(trial_id)
        with _ACTIVE_LOCK:
            _ACTIVE.discard(trial_id)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            owned, self._owned = set(self._owned), set()
        with _ACTIVE_LOCK:
            _ACTIVE.difference_update(owned)

    def _run(self) -> None:
        import optuna

        while not self._stop.wait(self.interval):
            with self._lock:
                owned = list(self._owned)
            for tid in owned:
                try:
                    self.storage.set_trial_system_attr(tid, BEAT_KEY, time.time())
                except optuna.exceptions.UpdateFinishedTrialError:
                    self.release(tid)  # finished (by us, or failed by another worker): nothing to keep alive
                except Exception:  # a transient database error: the next beat will try again
                    pass


# What this process saw of other workers' heartbeats: trial -> (heartbeat value, when it was first seen with
# that value, in seconds of this process's monotonic clock).
_SEEN: dict[tuple[Any, ...], tuple[Any, float]] = {}
_SEEN_LOCK = threading.Lock()


def _unchanged_for(key: tuple[Any, ...], value: Any, now: float) -> float:
    """Seconds of this process's monotonic clock for which the trial's heartbeat has been seen at ``value``."""
    with _SEEN_LOCK:
        seen = _SEEN.get(key)
        if seen is None or seen[0] != value:
            _SEEN[key] = (value, now)
            return 0.0
        return now - seen[1]


def stale_reason(trial: Any, now: float | None = None) -> str | None:
    """Why a RUNNING trial's worker is considered gone, or None while it may be alive.

    ``now``: this process's :func:`time.monotonic` (a seam for tests).  Only evidence that holds across PID
    namespaces and clock differences is used: a process known to be gone (same host, boot and PID namespace), or
    a heartbeat value this process has watched stay unchanged for ``MISSED_BEATS`` heartbeat intervals of its
    own clock (so a worker is declared dead at the earliest that long after this process first looked)."""
    now = time.monotonic() if now is None else now
    owner = WorkerId.from_attr(trial.system_attrs.get(OWNER_KEY))
    key = (trial._trial_id, trial.number, str(trial.datetime_start))
    if owner is None:  # stopped before recording its owner, or another tool: only how long it stays so
        quiet = _unchanged_for(key, "no owner", now)
        if quiet > MISSED_BEATS * 10:
            return (f"{INTERRUPTED}: left RUNNING with no owner recorded (a run stopped before it could record "
                    "one, e.g. by a full disk, or an older nas-harness or another tool); still so after "
                    f"{quiet:.0f} s of watching")
        return None
    alive = owner.alive_here(trial._trial_id)
    if alive is False:
        return f"{INTERRUPTED}: its worker {owner.label} is gone (the process ended: crash, kill or Ctrl-C)"
    if alive is True:
        return None
    beat = trial.system_attrs.get(BEAT_KEY)
    quiet = _unchanged_for(key, repr(beat), now)
    grace = MISSED_BEATS * owner.interval
    if quiet > grace:
        return (f"{INTERRUPTED}: its worker {owner.label} sent no heartbeat for {quiet:.0f} s of this worker's "
                f"watch (more than {MISSED_BEATS} x {owner.interval} s): machine or process lost")
    return None


def given_params(trial: Any, params_of_arch: Callable[[str], dict[str, Any]] | None) -> dict[str, Any] | None:
    """The parameters a trial was *given*: its fixed (enqueued) parameters, else those of its recorded arch;
    None when it died before its arch was chosen (its parameters may be partial)."""
    fixed = trial.system_attrs.get("fixed_params")
    if isinstance(fixed, dict) and fixed:
        return dict(fixed)
    arch = trial.user_attrs.get("arch")
    if isinstance(arch, str) and params_of_arch is not None:
        try:
            return params_of_arch(arch)
        except ValueError:
            return None
    return None


def fail_and_requeue(study: Any, trial: Any, reason: str,
                     params_of_arch: Callable[[str], dict[str, Any]] | None) -> str:
    """Fail a RUNNING trial with ``reason`` and queue its arch again; returns what was done (for logs)."""
    import optuna
    from optuna.trial import TrialState

    storage = study._storage
    try:
        storage.set_trial_user_attr(trial._trial_id, "fail_reason", reason)
        if not storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
            return ""
    except optuna.exceptions.UpdateFinishedTrialError:
        return ""  # finished meanwhile, by its owner or another worker
    retries = int(trial.user_attrs.get("retry_count") or 0)
    if retries >= MAX_RETRIES:
        return f"trial {trial.number} failed ({reason}); not retried: its arch was already tried {retries + 1} times"
    params = given_params(trial, params_of_arch)
    if params is None:
        return f"trial {trial.number} failed ({reason}); nothing to retry: it stopped before its arch was chosen"
    attrs: dict[str, Any] = {"retry_of": trial.number, "retry_count": retries + 1}
    if trial.user_attrs.get("reference"):
        attrs["reference"] = trial.user_attrs["reference"]
    for key in ("variant", "seed"):
        if key in trial.user_attrs and "fixed_params" in trial.system_attrs:
            attrs[key] = trial.user_attrs[key]
    study.enqueue_trial(params, user_attrs=attrs, skip_if_exists=False)
    return f"trial {trial.number} failed ({reason}); its arch is queued again"


def recover_stale(study: Any, params_of_arch: Callable[[str], dict[str, Any]] | None) -> list[str]:
    """Fail and re-queue every RUNNING trial whose worker is gone; returns one message per trial."""
    from optuna.trial import TrialState

    out = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        reason = stale_reason(t)
        if reason is not None:
            msg = fail_and_requeue(study, t, reason, params_of_arch)
            if msg:
                out.append(msg)
    return out


@dataclass
class Counts:
    finished: int
    running: int
    waiting: int
    failed: int


def counts(study: Any) -> Counts:
    from collections import Counter

    c = Counter(t.state.name for t in study.get_trials(deepcopy=False))
    return Counts(c["COMPLETE"] + c["PRUNED"], c["RUNNING"], c["WAITING"], c["FAIL"])


class TrialSlots:
    """Hands out trials of one study so that all workers together finish exactly ``target`` of them.

    ``candidates`` (grid studies): the parameter sets to evaluate, in order; each is created once (a failed
    one is not tried again unless it was interrupted) and the study ends when they run out.
    """

    def __init__(self, study: Any, target: int, lock: StorageLock, heartbeat: Heartbeat,
                 params_of_arch: Callable[[str], dict[str, Any]] | None = None,
                 candidates: Iterator[dict[str, Any]] | list[dict[str, Any]] | None = None,
                 key: Callable[[dict[str, Any]], str] | None = None, log: Callable[[str], None] = print,
                 poll_s: float | None = None) -> None:
        self.study = study
        self.target = target
        self.lock = lock
        self.heartbeat = heartbeat
        self.params_of_arch = params_of_arch
        self.candidates = list(candidates) if candidates is not None else None
        self.key = key or (lambda p: repr(sorted(p.items())))
        self.log = log
        self.poll_s = poll_s if poll_s is not None else min(5.0, max(0.5, heartbeat.interval / 2))
        self.exhausted = False
        self._waiting_said = False

    def try_acquire(self) -> Any:
        """A new RUNNING trial owned by this process, None when the study is full for now (others' trials
        are running), or :data:`DONE`."""
        with self.lock:
            for msg in recover_stale(self.study, self.params_of_arch):
                self.log(msg)
            c = counts(self.study)
            if c.finished >= self.target:
                return DONE
            if c.finished + c.running >= self.target:
                return None
            if c.waiting == 0 and self.candidates is not None:
                nxt = self._next_candidate()
                if nxt is None:
                    self.exhausted = True
                    return DONE if c.running == 0 else None
                self.study.enqueue_trial(nxt)
            with interrupts_held():  # a stop here would leave the new trial RUNNING and not owned: after it
                trial = self.study.ask()
                self.heartbeat.own(trial._trial_id)
            self._waiting_said = False
            return trial

    def acquire(self, deadline: float | None = None) -> Any:
        """Block until a trial is available (returned), or the study is done / the deadline passed (None)."""
        while True:
            got = self.try_acquire()
            if got is DONE:
                return None
            if got is not None:
                return got
            if deadline is not None and time.time() >= deadline:
                return None
            if not self._waiting_said:
                c = counts(self.study)
                self.log(f"waiting: {c.running} trial(s) of other workers are running and fill the study's "
                         f"{self.target} trials; this worker takes over if one of them fails")
                self._waiting_said = True
            wait(self.poll_s)

    def release(self, trial_id: int) -> None:
        self.heartbeat.release(trial_id)

    def abandon(self, reason: str) -> None:
        """Fail every trial this process still owns with ``reason`` (an ``interrupted: ...`` one) and queue its
        arch again: what a worker stopped by Ctrl-C does, wherever in the loop it was."""
        from optuna.trial import TrialState

        for tid in self.heartbeat.owned():
            frozen = self.study._storage.get_trial(tid)
            if frozen.state == TrialState.RUNNING:
                fail_and_requeue(self.study, frozen, reason, self.params_of_arch)
            self.release(tid)

    def _next_candidate(self) -> dict[str, Any] | None:
        from optuna.trial import TrialState

        taken = set()
        for t in self.study.get_trials(deepcopy=False):
            if t.state == TrialState.FAIL and str(t.user_attrs.get("fail_reason", "")).startswith(INTERRUPTED):
                continue
            params = t.system_attrs.get("fixed_params") or t.params
            if params:
                taken.add(self.key(params))
        assert self.candidates is not None
        return next((p for p in self.candidates if self.key(p) not in taken), None)

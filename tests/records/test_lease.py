"""Ownership, dead-worker detection and re-queueing on a real SQLite storage (no training)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from nas_harness.records import (
    MAX_RETRIES,
    Heartbeat,
    StorageLock,
    TrialSlots,
    WorkerId,
    counts,
    open_storage,
    recover_stale,
    stale_reason,
)
from nas_harness.records._lease import BEAT_KEY, MISSED_BEATS, OWNER_KEY, _boot_id, _pid_namespace, _proc_start

DIST = {"s1_kernel": CategoricalDistribution([3, 5]), "s1_se": CategoricalDistribution([True, False])}


def _study(tmp_path: Path, name: str = "s") -> optuna.Study:
    return optuna.create_study(storage=open_storage(f"sqlite:///{tmp_path / 'sub' / 'study.db'}"), study_name=name,
                               direction="maximize", load_if_exists=True)


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _owned_by(study: optuna.Study, trial: optuna.Trial, **owner: object) -> None:
    me = WorkerId.this(10).to_attr()
    study._storage.set_trial_system_attr(trial._trial_id, OWNER_KEY, {**me, **owner})
    study._storage.set_trial_system_attr(trial._trial_id, BEAT_KEY, time.time())


def params_of_arch(arch: str) -> dict:
    k, se = arch.split("-")
    return {"s1_kernel": int(k), "s1_se": se == "se"}


def test_a_dead_local_worker_is_detected_at_once_and_its_given_arch_requeued(tmp_path: Path) -> None:
    study = _study(tmp_path)
    done = study.ask(DIST)
    study.tell(done, 0.5)
    crashed = study.ask(DIST)
    crashed.set_user_attr("arch", f"{crashed.params['s1_kernel']}-{'se' if crashed.params['s1_se'] else 'no'}")
    crashed.set_user_attr("reference", "base")
    _owned_by(study, crashed, pid=_dead_pid(), start=None)
    given = dict(crashed.params)
    frozen = study._storage.get_trial(crashed._trial_id)
    assert stale_reason(frozen).startswith("interrupted: its worker")

    msgs = recover_stale(study, params_of_arch)
    assert len(msgs) == 1 and "queued again" in msgs[0]
    trials = study.get_trials()
    assert trials[1].state == TrialState.FAIL and trials[1].user_attrs["fail_reason"].startswith("interrupted")
    retry = trials[2]
    assert retry.state == TrialState.WAITING and retry.system_attrs["fixed_params"] == given
    assert retry.user_attrs == {"retry_of": 1, "retry_count": 1, "reference": "base"}
    assert recover_stale(study, params_of_arch) == []  # failed once, queued once
    assert len(study.get_trials()) == 3


def test_partial_parameters_are_never_requeued(tmp_path: Path) -> None:
    """A worker killed while suggesting (no arch recorded yet) is failed, but nothing is guessed from the
    partial parameter set; an enqueued trial is retried from its fixed parameters even then."""
    study = _study(tmp_path)
    partial = study.ask({"s1_kernel": DIST["s1_kernel"]})  # one of two parameters written
    _owned_by(study, partial, pid=_dead_pid(), start=None)
    study.enqueue_trial({"s1_kernel": 5, "s1_se": False}, user_attrs={"reference": "base-nose"})
    queued = study.ask({"s1_kernel": DIST["s1_kernel"]})  # popped, killed after one parameter
    _owned_by(study, queued, pid=_dead_pid(), start=None)
    msgs = recover_stale(study, params_of_arch)
    assert any("nothing to retry" in m for m in msgs)
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert len(waiting) == 1
    assert waiting[0].system_attrs["fixed_params"] == {"s1_kernel": 5, "s1_se": False}
    assert waiting[0].user_attrs["reference"] == "base-nose"


def test_retries_are_capped(tmp_path: Path) -> None:
    study = _study(tmp_path)
    study.enqueue_trial({"s1_kernel": 3, "s1_se": True})
    for attempt in range(MAX_RETRIES + 1):
        t = study.ask(DIST)
        _owned_by(study, t, pid=_dead_pid(), start=None)
        msgs = recover_stale(study, None)
        if attempt < MAX_RETRIES:
            assert "queued again" in msgs[0]
        else:
            assert "not retried" in msgs[0]
    assert counts(study).waiting == 0 and counts(study).failed == MAX_RETRIES + 1


def test_live_workers_are_never_failed(tmp_path: Path) -> None:
    study = _study(tmp_path)
    t = study.ask(DIST)
    # another live process on this machine (the test's parent shell) owns it
    _owned_by(study, t, pid=os.getppid(), start=_proc_start(os.getppid()))
    assert stale_reason(study._storage.get_trial(t._trial_id)) is None
    # another machine whose heartbeat is fresh
    _owned_by(study, t, host="elsewhere", boot="x", pid=1, start=1)
    assert stale_reason(study._storage.get_trial(t._trial_id)) is None
    assert recover_stale(study, None) == []
    assert study.get_trials()[0].state == TrialState.RUNNING


def test_another_machine_is_dead_after_its_heartbeat_stayed_unchanged_for_six_intervals_of_our_clock(
        tmp_path: Path) -> None:
    study = _study(tmp_path)
    t = study.ask(DIST)
    _owned_by(study, t, host="elsewhere", boot="x", pid=1, start=1, interval=10)
    study._storage.set_trial_system_attr(t._trial_id, BEAT_KEY, time.time() - 10_000)  # its clock: irrelevant
    get = study._storage.get_trial
    assert stale_reason(get(t._trial_id), now=1000.0) is None  # first look
    assert stale_reason(get(t._trial_id), now=1059.0) is None
    study._storage.set_trial_system_attr(t._trial_id, BEAT_KEY, time.time() - 9_990)  # it beat: alive
    assert stale_reason(get(t._trial_id), now=1100.0) is None
    assert stale_reason(get(t._trial_id), now=1159.0) is None
    reason = stale_reason(get(t._trial_id), now=1161.0)
    assert reason is not None and "sent no heartbeat for 61 s" in reason and "elsewhere" in reason


@pytest.mark.parametrize("skew_s", [-3600.0, -120.0, 120.0, 86_400.0])
def test_a_live_worker_whose_clock_is_off_is_never_failed(tmp_path: Path, skew_s: float) -> None:
    """Issue #21: a second host whose clock runs 120 s ahead (or behind, or a day off) beats every 10 s; an
    observer watching for ten minutes of its own time never fails its trial."""
    study = _study(tmp_path)
    t = study.ask(DIST)
    _owned_by(study, t, host="elsewhere", boot="x", pid=1, start=1, interval=10)
    start = time.monotonic() - 600.0  # the ten minutes end now, so recover_stale's own clock comes right after
    for step in range(60):
        study._storage.set_trial_system_attr(t._trial_id, BEAT_KEY, time.time() + skew_s + 10 * step)
        assert stale_reason(study._storage.get_trial(t._trial_id), now=start + 10 * step) is None
    assert recover_stale(study, None) == []


NAMESPACED_WORKER = """
import sys, time, optuna
from nas_harness.records import Heartbeat, open_storage
storage = open_storage(sys.argv[1])
study = optuna.load_study(storage=storage, study_name="s")
t = study.ask()
Heartbeat(storage, 1).own(t._trial_id)
print(t._trial_id, flush=True)
sys.stdin.read()  # runs until the test closes its stdin
"""


def test_a_live_worker_in_another_pid_namespace_is_never_failed(tmp_path: Path) -> None:
    """Issue #21: two workers on one host in different PID namespaces (containers with host networking: same
    host name and boot id) never judge each other by process id; a gone one is failed from its heartbeat."""
    unshare = ["unshare", "--pid", "--fork", "--mount-proc"]
    if shutil.which("unshare") is None or subprocess.run([*unshare, "true"], capture_output=True,
                                                         check=False).returncode != 0:
        pytest.skip("needs unshare --pid (root)")
    study = _study(tmp_path)
    url = f"sqlite:///{tmp_path / 'sub' / 'study.db'}"
    root = str(Path(__file__).resolve().parents[2])
    proc = subprocess.Popen([*unshare, sys.executable, "-c", NAMESPACED_WORKER, url], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": root})
    try:
        tid = int(proc.stdout.readline())
        owner = WorkerId.from_attr(study._storage.get_trial(tid).system_attrs[OWNER_KEY])
        assert owner.host == socket.gethostname() and owner.boot == _boot_id()
        assert owner.pidns and owner.pidns != _pid_namespace() and owner.pid != proc.pid
        for _ in range(3):  # its pid means another process (or none) here: that is no evidence
            assert stale_reason(study._storage.get_trial(tid)) is None
            assert recover_stale(study, None) == []
            time.sleep(0.5)
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
    t0 = time.monotonic()  # gone now: its heartbeat stops changing; 6 x 1 s of our clock later it is failed
    reason = stale_reason(study._storage.get_trial(tid), now=t0 + 6.5)
    assert reason is not None and "sent no heartbeat" in reason


def test_a_trial_of_this_process_that_nobody_runs_is_stale(tmp_path: Path) -> None:
    """E.g. an earlier run in the same Python session stopped without finishing it."""
    study = _study(tmp_path)
    t = study.ask(DIST)
    hb = Heartbeat(study._storage, 10)
    hb.own(t._trial_id)
    assert stale_reason(study._storage.get_trial(t._trial_id)) is None
    hb.close()
    assert stale_reason(study._storage.get_trial(t._trial_id)).startswith("interrupted")


def test_a_trial_left_running_without_an_owner_is_stale_after_six_intervals_of_watching(tmp_path: Path) -> None:
    """A run stopped between creating a trial and recording its owner (a full disk at that instant) or another
    tool: nothing to watch but how long it stays RUNNING; the reason says so without blaming another tool."""
    study = _study(tmp_path)
    t = study.ask(DIST)
    trial = study._storage.get_trial(t._trial_id)
    assert stale_reason(trial, now=1000.0) is None  # first look
    assert stale_reason(trial, now=1000.0 + MISSED_BEATS * 10 - 1) is None
    reason = stale_reason(trial, now=1000.0 + MISSED_BEATS * 10 + 1)
    assert reason.startswith("interrupted: left RUNNING with no owner recorded") and "full disk" in reason


def test_heartbeat_thread_refreshes_and_stops_on_finished_trials(tmp_path: Path) -> None:
    study = _study(tmp_path)
    t = study.ask(DIST)
    hb = Heartbeat(study._storage, 1)
    hb.own(t._trial_id)
    first = study._storage.get_trial(t._trial_id).system_attrs[BEAT_KEY]
    deadline = time.time() + 30
    while study._storage.get_trial(t._trial_id).system_attrs[BEAT_KEY] == first and time.time() < deadline:
        time.sleep(0.2)
    assert study._storage.get_trial(t._trial_id).system_attrs[BEAT_KEY] > first
    owner = WorkerId.from_attr(study._storage.get_trial(t._trial_id).system_attrs[OWNER_KEY])
    assert owner == WorkerId(socket.gethostname(), _boot_id(), os.getpid(), _proc_start(os.getpid()), 1,
                             _pid_namespace())
    study.tell(t, 1.0)
    hb.close()


def test_slots_never_exceed_the_target_and_free_slots_of_failed_trials(tmp_path: Path) -> None:
    study = _study(tmp_path)
    url = f"sqlite:///{tmp_path / 'sub' / 'study.db'}"
    slots = TrialSlots(study, 3, StorageLock(url), Heartbeat(study._storage, 10), log=lambda m: None, poll_s=0.01)
    a, b, c = (slots.try_acquire() for _ in range(3))
    assert all(isinstance(x, optuna.Trial) for x in (a, b, c))
    assert slots.try_acquire() is None  # full: 0 finished + 3 running
    study.tell(a, state=TrialState.FAIL)
    slots.release(a._trial_id)
    d = slots.try_acquire()  # a failed trial frees its slot
    assert isinstance(d, optuna.Trial)
    for t in (b, c, d):
        study.tell(t, 0.5)
        slots.release(t._trial_id)
    assert slots.try_acquire() == "done"
    assert counts(study).finished == 3
    slots.heartbeat.close()


def test_grid_candidates_are_each_created_once(tmp_path: Path) -> None:
    study = _study(tmp_path)
    url = f"sqlite:///{tmp_path / 'sub' / 'study.db'}"
    grid = [{"s1_kernel": k, "s1_se": se} for k in (3, 5) for se in (True, False)]
    study.enqueue_trial(grid[2])  # a reference that is also a grid point
    slots = TrialSlots(study, 10, StorageLock(url), Heartbeat(study._storage, 10), candidates=grid,
                       log=lambda m: None, poll_s=0.01)
    seen = []
    while (t := slots.try_acquire()) not in (None, "done"):
        t.suggest_categorical("s1_kernel", [3, 5])
        t.suggest_categorical("s1_se", [True, False])
        seen.append((t.params["s1_kernel"], t.params["s1_se"]))
        study.tell(t, 0.1)
        slots.release(t._trial_id)
    assert sorted(seen) == sorted((g["s1_kernel"], g["s1_se"]) for g in grid)
    assert slots.exhausted
    slots.heartbeat.close()


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_storage_lock_excludes_other_processes(tmp_path: Path, kind: str) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}" if kind == "sqlite" else f"journal:{tmp_path / 'x.log'}"
    code = ("import time\nfrom nas_harness.records import StorageLock\n"
            f"lock = StorageLock({url!r})\nprint('trying', flush=True)\n"
            "with lock:\n    print(time.time(), flush=True)\n")
    with StorageLock(url):
        proc = subprocess.Popen([os.sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                                env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
        assert proc.stdout.readline().strip() == "trying"
        time.sleep(0.5)
        released = time.time()
    acquired = float(proc.stdout.readline())
    proc.wait(timeout=60)
    assert acquired >= released


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_while_a_trial_is_created_comes_after_it_is_owned(tmp_path: Path, signum: int,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C or SIGTERM arriving inside ``study.ask()`` (the trial row exists, RUNNING) used to leave that trial
    unowned, so the stop did not fail and re-queue it; it is now delivered once the trial is owned."""
    from nas_harness import errors

    monkeypatch.setattr(errors, "_interrupted", False)  # given back after the test
    monkeypatch.setattr(errors, "_signal", None)

    def stop(sig: int, frame: object) -> None:
        errors.note_interrupt(sig)
        raise KeyboardInterrupt

    study = _study(tmp_path)
    url = f"sqlite:///{tmp_path / 'sub' / 'study.db'}"
    slots = TrialSlots(study, 3, StorageLock(url), Heartbeat(study._storage, 10), log=lambda m: None, poll_s=0.01)
    ask = study.ask

    def ask_then_signal() -> optuna.Trial:
        trial = ask()
        os.kill(os.getpid(), signum)  # the trial exists in the storage; the signal lands before ask() returns
        return trial

    monkeypatch.setattr(study, "ask", ask_then_signal)
    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with pytest.raises(KeyboardInterrupt):
            slots.try_acquire()
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    [running] = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    assert running._trial_id in slots.heartbeat.owned()
    slots.abandon("interrupted: stopped")
    states = [t.state for t in study.get_trials(deepcopy=False)]
    assert states == [TrialState.FAIL], states
    assert errors.interrupt_signal() == signum
    slots.heartbeat.close()

"""SIGKILL and Ctrl-C (SIGINT) in the middle of a study: no completed trial is lost, the interrupted arch is
retried, and re-running the same command finishes the study."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import optuna
import pytest
from helpers.cli import start_cli
from helpers.studies import write_study
from optuna.trial import TrialState


def _states(db: Path) -> list[str]:
    """Trial states in order; a RUNNING trial that has started training (its arch is recorded) is TRAINING."""
    if not db.exists():
        return []
    try:
        with sqlite3.connect(db, timeout=5) as con:
            rows = con.execute("SELECT t.state, (SELECT COUNT(*) FROM trial_user_attributes a WHERE "
                               "a.trial_id = t.trial_id AND a.key = 'arch') FROM trials t ORDER BY t.number")
            return ["TRAINING" if s == "RUNNING" and n else s for s, n in rows]
    except sqlite3.OperationalError:  # tables not created yet
        return []


def _start(path: Path) -> subprocess.Popen:
    return start_cli("search", path, "--no-progress", cwd=path.parent, text=False)


def _wait_for(db: Path, proc: subprocess.Popen, pred, timeout: float = 120) -> list[str]:
    t0 = time.time()
    while time.time() - t0 < timeout:
        states = _states(db)
        if pred(states):
            return states
        if proc.poll() is not None:
            raise AssertionError(f"search exited early: {proc.stderr.read().decode()[-2000:]}")
        time.sleep(0.05)
    raise AssertionError(f"timed out; states {states}")


def _interrupt_then_resume(tmp_path: Path, sig: int) -> None:
    path = write_study(tmp_path, train={"epochs": 2}, trial={"cache": False}, sampler={"kind": "random"},
                       run={"n_trials": 2, "progress": False, "plots": False})
    db = tmp_path / "results" / "tiny" / "study.db"
    proc = _start(path)
    # wait until one trial is complete and the next one is RUNNING, then interrupt mid-training
    states = _wait_for(db, proc, lambda s: s.count("COMPLETE") >= 1 and s[-1:] == ["TRAINING"])
    proc.send_signal(sig)
    proc.wait(timeout=60)
    if sig == signal.SIGINT:
        assert proc.returncode == 130, proc.stderr.read().decode()[-2000:]
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{db}")
    before = {t.number: (t.state, t.values, t.user_attrs.get("arch")) for t in study.trials}
    completed = {n: v for n, v in before.items() if v[0] == TrialState.COMPLETE}
    assert len(completed) >= states.count("COMPLETE")
    interrupted = [n for n, v in before.items() if v[0] in (TrialState.RUNNING, TrialState.FAIL)]
    assert interrupted, before

    proc2 = _start(path)
    _, err = proc2.communicate(timeout=240)
    assert proc2.returncode == 0, err.decode()[-2000:]
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{db}")
    after = {t.number: t for t in study.trials}
    for n, (_, values, arch) in completed.items():  # nothing completed was lost or changed
        assert after[n].state == TrialState.COMPLETE and after[n].values == values
        assert after[n].user_attrs["arch"] == arch
    for n in interrupted:  # the interrupted trial is FAIL with a reason, and its arch was run again
        t = after[n]
        assert t.state == TrialState.FAIL and t.user_attrs["fail_reason"].startswith("interrupted")
        retry = [r for r in after.values() if r.user_attrs.get("retry_of") == n]
        assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE
        assert retry[0].params == t.params and retry[0].user_attrs["arch"] == t.user_attrs["arch"]
    assert sum(t.state == TrialState.COMPLETE for t in after.values()) == 2


@pytest.mark.slow
def test_sigkill_mid_trial_loses_nothing_and_resumes(tmp_path: Path) -> None:
    _interrupt_then_resume(tmp_path, signal.SIGKILL)


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_resumes(tmp_path: Path) -> None:
    _interrupt_then_resume(tmp_path, signal.SIGINT)

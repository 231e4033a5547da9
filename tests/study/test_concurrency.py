"""Several real worker processes on one study, on SQLite and on a real PostgreSQL server: exactly n_trials
finished trials and no crash; a SIGKILLed worker's trial is failed with a reason and retried; no credential
reaches the console, the study or the report."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest
from helpers.cli import start_cli
from helpers.studies import write_study
from optuna.trial import TrialState

pytestmark = pytest.mark.slow


def _worker(path: Path, *flags: str) -> subprocess.Popen:
    return start_cli("search", path, "--no-progress", *flags, cwd=path.parent)


def _study_file(tmp_path: Path, n_trials: int, **sections) -> Path:
    return write_study(tmp_path, sampler={"kind": "random"}, trial={"cache": False},
                       run={"n_trials": n_trials, "progress": False, "plots": False, "heartbeat_s": 2}, **sections)


def _run_workers(path: Path, n: int, *flags: str) -> list[tuple[int, str, str]]:
    procs = []
    for _ in range(n):
        procs.append(_worker(path, *flags))
        time.sleep(1.0)  # staggered starts, as people start them
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=600)
        out.append((p.returncode, stdout, stderr))
    return out


def _trials(url: str, name: str = "tiny") -> list[optuna.trial.FrozenTrial]:
    from nas_harness.records import open_storage

    return optuna.load_study(study_name=name, storage=open_storage(url)).trials


def _check_exactly(trials: list, n: int) -> None:
    states = [t.state for t in trials]
    finished = sum(s in (TrialState.COMPLETE, TrialState.PRUNED) for s in states)
    assert finished == n, [(t.number, t.state.name, t.user_attrs.get("fail_reason")) for t in trials]
    assert TrialState.RUNNING not in states and TrialState.WAITING not in states


@pytest.mark.parametrize("workers", [2, 3])
def test_workers_on_sqlite_reach_exactly_n_trials(tmp_path: Path, workers: int) -> None:
    path = _study_file(tmp_path, 7)
    results = _run_workers(path, workers)
    for code, _, err in results:
        assert code == 0, err[-2000:]
    trials = _trials(f"sqlite:///{tmp_path / 'results' / 'tiny' / 'study.db'}")
    _check_exactly(trials, 7)
    assert not [t for t in trials if t.state == TrialState.FAIL]
    owners = {t.system_attrs["nas:owner"]["pid"] for t in trials}
    assert len(owners) >= 2, "the work was shared"


@pytest.mark.parametrize("workers", [2, 3])
def test_workers_on_postgresql_reach_exactly_n_trials_without_leaking_the_password(
        tmp_path: Path, postgres, workers: int) -> None:
    from helpers.postgres import PASSWORD

    url = postgres.create_database(f"conc{workers}")
    path = _study_file(tmp_path, 6)
    results = _run_workers(path, workers, "--storage", url)
    for code, out, err in results:
        assert code == 0, err[-2000:]
        assert PASSWORD not in out + err
        assert "***" in out  # the storage is named, redacted
    trials = _trials(url)
    _check_exactly(trials, 6)
    study = optuna.load_study(study_name="tiny", storage=_sqlalchemy(url))
    assert PASSWORD not in repr(study.user_attrs)
    assert study.user_attrs["config"]["run"]["storage"].count("***") == 1
    # the report and the table name the storage without the password
    from nas_harness.cli import main

    assert main(["report", url, "--out", str(tmp_path / "rep"), "--no-figures"]) == 0
    for f in (tmp_path / "rep").iterdir():
        if f.suffix in (".md", ".html", ".csv"):
            assert PASSWORD not in f.read_text(), f


def _sqlalchemy(url: str) -> object:
    from nas_harness.records import open_storage

    return open_storage(url)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_sigkilled_worker_is_failed_with_a_reason_and_its_arch_retried(tmp_path: Path, backend: str,
                                                                          request: pytest.FixtureRequest) -> None:
    if backend == "postgresql":
        url = request.getfixturevalue("postgres").create_database("killed")
    else:
        url = f"sqlite:///{tmp_path / 'results' / 'tiny' / 'study.db'}"
    path = _study_file(tmp_path, 5, train={"epochs": 3})
    flags = ("--storage", url)
    victim = _worker(path, *flags)
    from nas_harness.records import open_storage

    deadline = time.time() + 300
    killed_number = None
    while time.time() < deadline and killed_number is None:
        time.sleep(0.2)
        if victim.poll() is not None:
            pytest.fail(f"the worker ended before it could be killed: {victim.stderr.read()[-2000:]}")
        try:
            study = optuna.load_study(study_name="tiny", storage=open_storage(url))
        except Exception:  # not created yet
            continue
        running = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if "arch" in t.user_attrs]
        if running:
            killed_number = running[0].number
            given = dict(running[0].params)
            victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=60)
    assert killed_number is not None
    survivor = _worker(path, *flags)
    _, err = survivor.communicate(timeout=600)
    assert survivor.returncode == 0, err[-2000:]
    assert f"trial {killed_number} failed (interrupted: its worker" in err
    trials = _trials(url)
    _check_exactly(trials, 5)
    dead = trials[killed_number]
    assert dead.state == TrialState.FAIL and dead.user_attrs["fail_reason"].startswith("interrupted: its worker")
    retry = [t for t in trials if t.user_attrs.get("retry_of") == killed_number]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE and retry[0].params == given

"""Several local workers on one study (``run.workers``): the same (arch, seed) gives the same val_acc with one
worker or two, on an idle machine or next to a busy loop; Ctrl-C, SIGTERM and SIGKILL of ``search`` lose nothing; the
default is one thread per trial; a Ray request that does not fit the study's threads is packed to it."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from helpers.cli import start_cli
from helpers.kill import sigkill_after_first_complete
from helpers.studies import tiny_dict, to_toml
from optuna.trial import TrialState

from nas_harness.study.config import validate
from nas_harness.study.search import run_search

pytestmark = pytest.mark.slow

# 2 kernels per stage, nothing else: a grid of 2^7 archs handed out in one seeded order to every worker
GRID = {"space": {"kernels": [3, 5], "expands": [3], "se": [True], "repeats_delta": 0},
        "sampler": {"kind": "grid"}, "train": {"threads": None}}


def _vals(cfg) -> dict[str, float]:
    study = optuna.load_study(study_name=cfg.name, storage=cfg.storage_url)
    return {t.user_attrs["arch"]: t.user_attrs["val_acc"] for t in study.trials if t.state == TrialState.COMPLETE}


def _busy_loop() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def test_same_numbers_with_one_and_two_workers_idle_and_busy(tmp_path: Path) -> None:
    one = validate(tiny_dict(tmp_path / "one", **GRID, run={"n_trials": 4, "workers": 1}))
    two = validate(tiny_dict(tmp_path / "two", **GRID, run={"n_trials": 4, "workers": 2}))
    busy = validate(tiny_dict(tmp_path / "busy", **GRID, run={"n_trials": 4, "workers": 2}))
    assert run_search(one).workers == 1
    summary = run_search(two)
    assert summary.workers == 2 and summary.n_complete == 4 and summary.threads == 1
    loop = _busy_loop()
    try:
        run_search(busy)
    finally:
        loop.kill()
        loop.wait()
    assert len(_vals(one)) == 4
    assert _vals(one) == _vals(two) == _vals(busy)  # identical floats, not approximately equal
    study = optuna.load_study(study_name=two.name, storage=two.storage_url)
    assert {t.user_attrs["threads"] for t in study.trials} == {1}
    assert study.user_attrs["comparable"]["train"]["threads"] == 1  # one thread per trial unless the file says


def _count(db: Path, state: str) -> int:
    try:
        with sqlite3.connect(db, timeout=5) as con:
            return con.execute("select count(*) from trials where state = ?", (state,)).fetchone()[0]
    except sqlite3.Error:
        return 0


def _wait_for(proc: subprocess.Popen, ready: Callable[[], bool]) -> None:
    """Poll until ``ready()`` (or the command ended, or 300 s passed)."""
    t0 = time.time()
    while time.time() - t0 < 300 and proc.poll() is None:
        if ready():
            break
        time.sleep(0.1)


def _cli(path: Path, *argv: str) -> subprocess.Popen:
    return start_cli("search", path, "--no-progress", *argv, cwd=path.parent, start_new_session=True)


def _finish_and_count(path: Path, cfg) -> list[TrialState]:
    proc = _cli(path, "--workers", "2")
    _out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    study = optuna.load_study(study_name=cfg.name, storage=cfg.storage_url)
    states = [t.state for t in study.trials]
    assert states.count(TrialState.COMPLETE) == cfg.run.n_trials and TrialState.RUNNING not in states
    return states


def test_sigkill_of_search_kills_its_workers_and_loses_nothing(tmp_path: Path) -> None:
    d = tiny_dict(tmp_path, **GRID, run={"n_trials": 8, "workers": 2})
    path = tmp_path / "tiny.toml"
    path.write_text(to_toml(d))
    cfg = validate(d)
    proc = _cli(path)
    try:
        sigkill_after_first_complete(proc, cfg.study_dir / "study.db")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: exit {proc.returncode}, stderr {proc.stderr.read()[-3000:]}") from None
    time.sleep(1.0)  # the workers die with their parent (no orphan keeps training)
    ps = subprocess.run(["pgrep", "-f", f"nas-harness-worker|{path}"], capture_output=True, text=True)
    assert not [p for p in ps.stdout.split() if int(p) != os.getpid()], ps.stdout
    states = _finish_and_count(path, cfg)
    failed = [t for t in optuna.load_study(study_name=cfg.name, storage=cfg.storage_url).trials
              if t.state == TrialState.FAIL]
    assert all(t.user_attrs["fail_reason"].startswith("interrupted") for t in failed), states


def test_ctrl_c_stops_every_worker_and_loses_nothing(tmp_path: Path) -> None:
    d = tiny_dict(tmp_path, **GRID, run={"n_trials": 5, "workers": 2})
    path = tmp_path / "tiny.toml"
    path.write_text(to_toml(d))
    cfg = validate(d)
    proc = _cli(path)
    db = cfg.study_dir / "study.db"
    _wait_for(proc, lambda: _count(db, "COMPLETE") > 0)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    study = optuna.load_study(study_name=cfg.name, storage=cfg.storage_url)
    assert TrialState.RUNNING not in [t.state for t in study.trials]
    _finish_and_count(path, cfg)


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_stops_like_ctrl_c_and_exits_143(tmp_path: Path, workers: int) -> None:
    """SIGTERM (SLURM, systemd, docker stop, kill) to the command alone: the trials in flight are failed as
    stopped by SIGTERM and queued again, the workers stop, one stop line says how to continue, exit 143."""
    d = tiny_dict(tmp_path, **GRID, run={"n_trials": 40, "workers": workers})
    path = tmp_path / "tiny.toml"
    path.write_text(to_toml(d))
    cfg = validate(d)
    proc = _cli(path)
    db = cfg.study_dir / "study.db"
    _wait_for(proc, lambda: _count(db, "COMPLETE") > 0 and _count(db, "RUNNING") > 0)
    time.sleep(0.5)  # usually into the next trial's training
    os.kill(proc.pid, signal.SIGTERM)  # to this process alone: it passes it on to its workers
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, (proc.returncode, err[-3000:])
    assert "Traceback" not in err, err[-3000:]
    last = out.splitlines()[-1]
    assert last.startswith("stopped: interrupted (SIGTERM) with ") and last.endswith(
        "; run the same command to continue"), out[-2000:]
    trials = optuna.load_study(study_name=cfg.name, storage=cfg.storage_url).trials
    assert TrialState.RUNNING not in [t.state for t in trials]
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert failed and {t.user_attrs["fail_reason"] for t in failed} == {"interrupted: stopped by SIGTERM"}
    assert [t for t in trials if t.state == TrialState.COMPLETE]  # finished trials kept
    ps = subprocess.run(["pgrep", "-f", f"nas-harness-worker|{path}"], capture_output=True, text=True)
    assert not [p for p in ps.stdout.split() if int(p) != os.getpid()], ps.stdout


def test_more_workers_than_cores_or_trials_are_cut_with_one_note(tmp_path: Path) -> None:
    """``--workers 64`` on a small machine: never more threads than usable cores, and never more workers than
    trials to go, each cut said in the one note line (the request itself is valid: a study file moves between
    machines)."""
    from nas_harness.train.trainer import usable_cores

    cores = usable_cores()
    lines: list[str] = []
    summary = run_search(validate(tiny_dict(tmp_path, run={"n_trials": 1, "workers": cores + 1})), log=lines.append)
    assert summary.workers == 1 and summary.n_complete == 1
    notes = [ln for ln in lines if ln.startswith("note: run.workers")]
    assert notes == [f"note: run.workers = {cores + 1}: {cores + 1} workers x 1 thread(s) per trial would "
                     f"oversubscribe the {cores} usable core(s), so {cores} run at once; only 1 trial to go, so 1 "
                     "worker"], lines


def test_start_up_lines_come_before_the_progress_bar(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Printed after the bar had started they tore it (the line landed mid-bar on a terminal)."""
    cfg = validate(tiny_dict(tmp_path, **GRID, run={"n_trials": 2, "workers": 2}))
    summary = run_search(cfg, progress=True)
    assert summary.workers == 2 and summary.n_complete == 2
    err = capsys.readouterr().err
    assert "2 workers, 1 thread(s) each" in err and "trials:" in err, err
    assert err.index("2 workers, 1 thread(s) each") < err.index("trials:"), err


@pytest.mark.ray
def test_a_ray_request_is_packed_to_the_study_threads(tmp_path: Path, ray_local: None) -> None:
    d = tiny_dict(tmp_path, sampler={"kind": "random"}, run={"n_trials": 1}, train={"threads": 2})
    run_search(validate(d))  # created locally with 2 threads per trial
    d["run"].update(n_trials=2, backend="ray")
    d["ray"] = {"cpus_per_trial": 1.0}
    lines: list[str] = []
    summary = run_search(validate(d), log=lines.append)
    assert summary.n_complete == 2
    assert any("each Ray trial reserves 2 CPU(s), not ray.cpus_per_trial = 1" in ln for ln in lines), lines
    d3 = tiny_dict(tmp_path / "t3", sampler={"kind": "random"}, run={"n_trials": 1}, train={"threads": 3})
    run_search(validate(d3))
    d3["run"].update(n_trials=2, backend="ray")
    from nas_harness.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^ray\.cpus_per_trial: study 'tiny' runs 3 thread\(s\) per trial .* the "
                                          r"largest Ray node has 2; run it with --backend local"):
        run_search(validate(d3))

"""Workers started at the same moment on a storage that does not exist yet: every one of them opens it (real
processes, SQLite and a real PostgreSQL server)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pytest

ROOT = Path(__file__).resolve().parents[2]

# Each process imports what it needs, says "ready", waits for the go file, then opens the storage (creating its
# schema), creates or loads the study and adds one trial.
_WORKER = """
import os, sys, time
import optuna
from nas_harness.records import open_storage
optuna.logging.set_verbosity(optuna.logging.ERROR)
go = sys.argv[2]
print("ready", flush=True)
while not os.path.exists(go):
    time.sleep(0.002)
storage = open_storage(sys.argv[1])
study = optuna.create_study(storage=storage, study_name="race", direction="maximize", load_if_exists=True)
study.tell(study.ask(), 1.0)
"""


def _race(url: str, go: Path, n: int = 4) -> list[subprocess.CompletedProcess[str]]:
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, url, str(go)], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(n)]
    for p in procs:  # every process has imported optuna and the harness and waits for the go file
        assert p.stdout.readline().strip() == "ready", p.stderr.read()[-2000:]
    go.touch()
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=300)
        out.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
    return out


def _check(results: list[subprocess.CompletedProcess[str]], url: str) -> None:
    assert [r.returncode for r in results] == [0] * len(results), [r.stderr[-600:] for r in results if r.returncode]
    from nas_harness.records import open_storage

    study = optuna.load_study(study_name="race", storage=open_storage(url, create=False))
    assert len(study.get_trials(deepcopy=False)) == len(results)


@pytest.mark.timeout(600)
def test_workers_started_together_on_a_new_sqlite_file(tmp_path: Path) -> None:
    for i in range(2):
        url = f"sqlite:///{tmp_path / f'r{i}' / 'study.db'}"
        _check(_race(url, tmp_path / f"go{i}"), url)


@pytest.mark.timeout(600)
def test_workers_started_together_on_a_new_postgresql_database(tmp_path: Path, postgres) -> None:
    for i in range(2):
        url = postgres.create_database(f"race{i}")
        _check(_race(url, tmp_path / f"go{i}"), url)

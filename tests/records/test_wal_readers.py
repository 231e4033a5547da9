"""Issue #21: a read-only copy of a results folder whose trials are still in ``study.db-wal`` (a search killed
before SQLite's last checkpoint) is read whole: every reader sees every trial, never a part of the study."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.mounts import read_only_copy

from nas_harness.cli import main
from nas_harness.results import load_study

ROOT = Path(__file__).resolve().parents[2]

KILLED_WRITER = """
import os, signal, sys
import optuna
from nas_harness.records import open_storage
optuna.logging.set_verbosity(optuna.logging.WARNING)
sys.path.insert(0, sys.argv[3])
from helpers.fakes import make_study
storage = open_storage(f"sqlite:///{sys.argv[1]}")
con = storage.engine.raw_connection()  # a reader held open keeps SQLite from checkpointing at the end
make_study(storage, name="fake", n=int(sys.argv[2]), failures=0, pruned=0)
os.kill(os.getpid(), signal.SIGKILL)  # killed: the last checkpoint never happens
"""


def killed_search(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True)
    db = folder / "study.db"
    res = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(db), str(n), str(ROOT / "tests")],
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=300,
                         check=False)
    assert res.returncode == -signal.SIGKILL, res.stderr[-2000:]
    assert Path(f"{db}-wal").stat().st_size > 0
    return db


def committed_in_main_file(db: Path) -> int:
    """Trials SQLite finds in the main file alone (what an immutable open of the copy used to show)."""
    copy = db.parent.parent / "main-only.db"
    shutil.copyfile(db, copy)
    try:
        with sqlite3.connect(f"{copy.as_uri()}?immutable=1", uri=True) as con:
            return con.execute("select count(*) from trials").fetchone()[0]
    except sqlite3.DatabaseError:
        return 0
    finally:
        copy.unlink()


@pytest.mark.parametrize("n", [5, 30])
def test_a_read_only_copy_with_trials_in_the_wal_is_read_whole(tmp_path: Path, n: int) -> None:
    db = killed_search(tmp_path / "results" / "fake", n)
    expected = n + 2  # two references
    with read_only_copy(db.parent, tmp_path / "ro") as ro:
        wal_before = (ro / "study.db-wal").read_bytes()
        assert len(load_study(ro).trials) == expected
        assert len(load_study(ro / "study.db").trials) == expected
        assert len(load_study(f"sqlite:///{ro / 'study.db'}").trials) == expected
        assert main(["report", str(ro), "--out", str(tmp_path / "rep")]) == 0
        assert (ro / "study.db-wal").read_bytes() == wal_before
    with (tmp_path / "rep" / "trials.csv").open() as f:
        assert sum(1 for _ in f) == expected + 1  # the header and every trial


def test_the_copy_really_had_trials_only_in_the_wal(tmp_path: Path) -> None:
    """The reproduction holds: the main file alone has fewer trials than the study (else the test above could
    not fail)."""
    db = killed_search(tmp_path / "results" / "fake", 5)
    assert committed_in_main_file(db) < 7

"""SIGKILL a real process at a chosen moment: once a SQLite study holds a completed trial."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
from pathlib import Path


def sigkill_after_first_complete(proc: subprocess.Popen, db: Path, study: str | None = None,
                                 timeout_s: float = 180) -> None:
    """Wait until ``db`` holds a COMPLETE trial (of study ``study``, or any), then SIGKILL ``proc``; assert that
    the kill, not the process's own end, stopped it."""
    sql = "select count(*) from trials t join studies s on t.study_id = s.study_id where t.state = 'COMPLETE'"
    params: tuple[str, ...] = ()
    if study is not None:
        sql, params = sql + " and s.study_name = ?", (study,)
    deadline = time.time() + timeout_s
    try:
        while time.time() < deadline and proc.poll() is None:
            n = 0
            if db.exists():
                try:
                    with sqlite3.connect(db) as con:
                        n = con.execute(sql, params).fetchone()[0]
                except sqlite3.Error:
                    n = 0
            if n >= 1:
                break
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the process finished before it could be killed"

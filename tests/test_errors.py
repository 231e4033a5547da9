"""Environment failures (a full disk, a read-only file system) are worded once, in ``nas_harness.errors``: the
command line, the storage, checkpoints and the compiled kernels' cache say the same line for the same errno."""

from __future__ import annotations

import argparse
import errno
import os
import sqlite3
import warnings
from pathlib import Path

import pytest

from nas_harness.errors import (
    ENVIRONMENT_REASONS,
    environment_error,
    environment_line,
    os_reason,
)

FULL = "the disk is full (no space left on the device)"


def _enospc(filename: str | None = None) -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), filename)


def test_the_wording_of_an_errno_anywhere_in_the_chain() -> None:
    assert environment_line(_enospc("/r/study.db")) == f"{FULL} writing '/r/study.db'"
    assert environment_line(_enospc(), "/r/out.csv") == f"{FULL} writing '/r/out.csv'"  # the OSError's own first
    assert environment_line(OSError(errno.EACCES, "x", "/r")) == "permission denied at '/r'"
    try:
        try:
            raise _enospc("/r/a")
        except OSError as exc:
            raise RuntimeError("torch's writer failed") from exc
    except RuntimeError as wrapped:
        assert environment_line(wrapped) == f"{FULL} writing '/r/a'"
        assert os_reason(wrapped) == FULL
    assert environment_line(OSError(errno.ENOENT, "No such file or directory", "/r")) is None  # not the disk's
    assert os_reason(OSError(errno.ENOENT, "No such file or directory")) == "No such file or directory"
    assert environment_line(ValueError("nothing to do with disks")) is None
    # SQLite's words for a full disk, about the database file it is given
    assert environment_line(sqlite3.OperationalError("database or disk is full"), path="/r/study.db") == (
        f"{FULL} writing '/r/study.db'")
    assert environment_error(sqlite3.OperationalError("database or disk is full")).errno == errno.ENOSPC
    assert set(ENVIRONMENT_REASONS) >= {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO}


def test_every_caller_gives_the_same_line_for_a_full_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's error line, the storage's refusal, a checkpoint's warning and the kernels' warning all carry
    ``environment_line``'s words for ENOSPC."""
    from nas_harness.cli._checks import environment_error as cli_line
    from nas_harness.cli._checks import keep
    from nas_harness.kernels import _native
    from nas_harness.records import _storage
    from nas_harness.train import trainer

    target = tmp_path / "out" / "c.pt"
    expected = f"{FULL} writing {str(target)!r}"
    assert environment_line(_enospc(str(target))) == expected

    # the command line: the file it was writing, then what is kept
    args = argparse.Namespace()
    keep(args, writing=target, kept="nothing was lost")
    assert cli_line(_enospc(), args) == f"{expected}; nothing was lost"

    # the storage: SQLite's "database or disk is full" becomes an OSError naming the database file
    db = tmp_path / "study.db"

    def full(*_a: object, **_k: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(_storage, "_rdb_storage", full)
    with pytest.raises(OSError) as raised:
        _storage.open_storage(f"sqlite:///{db}")
    assert environment_line(raised.value) == f"{FULL} writing {str(db)!r}"
    args = argparse.Namespace()
    keep(args, storage=str(db))
    assert cli_line(sqlite3.OperationalError("database or disk is full"), args) == f"{FULL} writing {str(db)!r}"

    # a checkpoint: one warning with the same words, training goes on
    def no_space(*_a: object, **_k: object) -> None:
        raise _enospc()

    monkeypatch.setattr(trainer.torch, "save", no_space)
    with pytest.warns(RuntimeWarning) as caught:
        assert trainer._save_checkpoint(target, {"epoch": 1}) is False
    assert [str(w.message).split(";")[0] for w in caught] == [f"checkpoint not written: {expected}"]

    # the compiled kernels' cache
    def build(_cc: str) -> Path:
        raise _enospc(str(target))

    monkeypatch.setenv(_native.ENV_VAR, "1")
    monkeypatch.setattr(_native, "_state", {})
    monkeypatch.setattr(_native, "_compiler", lambda: "cc")
    monkeypatch.setattr(_native, "_build", build)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert _native.library() is None
    assert [str(w.message) for w in seen] == [
        f"nas_harness.kernels: CPU kernels unavailable, using stock PyTorch ops: {expected}"]


_INTERRUPTED_QUERY = r"""
import sys
import sqlalchemy
from nas_harness.errors import note_interrupt, quiet_cleanup_after_interrupt

quiet_cleanup_after_interrupt()
quiet_cleanup_after_interrupt()  # idempotent: one handler
engine = sqlalchemy.create_engine("sqlite://")
try:
    try:
        if "interrupt" in sys.argv:
            note_interrupt()
        raise KeyboardInterrupt
    finally:
        try:
            raise RuntimeError("Cannot operate on a closed database.")
        except RuntimeError:  # what Connection._safe_close_cursor does with the failed close
            engine.pool.logger.error("Error closing cursor", exc_info=True)
except KeyboardInterrupt:
    print("stopped")
"""


@pytest.mark.parametrize("noted", [True, False])
def test_sqlalchemy_cleanup_of_an_interrupted_query_is_quiet_after_ctrl_c(noted: bool) -> None:
    """CI saw "Error closing cursor" with two tracebacks after Ctrl-C of a two-worker search: SQLAlchemy closes
    the cursor of the query the KeyboardInterrupt stopped on a connection it already invalidated."""
    import subprocess
    import sys

    argv = [sys.executable, "-c", _INTERRUPTED_QUERY] + (["interrupt"] if noted else [])
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "stopped", proc.stderr
    if noted:
        assert proc.stderr == ""
    else:  # without a noted Ctrl-C SQLAlchemy's error reaches the terminal as before (nothing else is hidden)
        assert "Error closing cursor" in proc.stderr and proc.stderr.count("Error closing cursor") == 1


def test_interrupts_held_delivers_the_first_stop_at_the_end_and_a_repeated_one_at_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import signal

    from nas_harness import errors
    from nas_harness.errors import interrupts_held

    got: list[str] = []

    def stop(signum: int, frame: object) -> None:
        got.append(f"stop {signum}")
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, stop)
    try:
        monkeypatch.setattr(errors, "REPEAT_STOP_S", 1e9)  # the same stop arriving twice (terminal and parent)
        with pytest.raises(KeyboardInterrupt), interrupts_held():
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
            got.append("block finished")
        assert got == ["block finished", f"stop {int(signal.SIGINT)}"]
        got.clear()
        # a storage call that hangs: Ctrl-C pressed again later stops it
        monkeypatch.setattr(errors, "REPEAT_STOP_S", 0.0)
        with pytest.raises(KeyboardInterrupt), interrupts_held():
            os.kill(os.getpid(), signal.SIGINT)
            got.append("held")
            os.kill(os.getpid(), signal.SIGINT)
            got.append("not reached")
        assert got == ["held", f"stop {int(signal.SIGINT)}"]  # delivered once, not again at the block's end
        assert signal.getsignal(signal.SIGINT) is stop
    finally:
        signal.signal(signal.SIGINT, previous)

"""A command that only reads a study (report, plot, export) leaves the study's folder as it found it: a
read-only SQLite connection to a WAL database would create ``study.db-wal`` and ``study.db-shm`` beside it and
leave them there, also when the command then refuses the study."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from helpers.fakes import study_folder

from nas_harness.cli import main
from nas_harness.results import load_study


def wal_study(root: Path, garbage_arch: bool = False) -> Path:
    """A fake study in WAL mode (as a search writes it), closed: only ``study.db`` in its folder."""
    folder = study_folder(root)
    con = sqlite3.connect(folder / "study.db")
    assert con.execute("PRAGMA journal_mode=WAL").fetchone() == ("wal",)
    if garbage_arch:  # a trial report/plot/export refuse (one line naming the trial)
        con.execute("update trial_user_attributes set value_json = '\"garbage\"' where key = 'arch' and trial_id = "
                    "(select max(trial_id) from trials where state = 'COMPLETE')")
        con.commit()
    con.close()
    assert sorted(p.name for p in folder.iterdir()) == ["study.db"]
    return folder


@pytest.mark.parametrize("command", ["report", "plot", "export"])
def test_a_refused_study_is_left_as_it_was(tmp_path: Path, command: str, capsys: pytest.CaptureFixture) -> None:
    folder = wal_study(tmp_path / "results", garbage_arch=True)
    assert main([command, str(folder), "--out", str(tmp_path / "out")]) == 2
    assert "stored arch = 'garbage'" in capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir()) == ["study.db"]


def test_reading_a_study_creates_nothing_beside_it(tmp_path: Path) -> None:
    folder = wal_study(tmp_path / "results")
    assert len(load_study(folder).trials) == 32
    assert main(["export", str(folder), "--out", str(tmp_path / "out")]) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["study.db"]


def test_a_study_a_writer_has_open_is_read_in_place(tmp_path: Path) -> None:
    """While a writer holds the file (its -wal and -shm are there), a reader sees the trials still in the WAL."""
    folder = wal_study(tmp_path / "results")
    writer = sqlite3.connect(folder / "study.db")
    try:
        writer.execute("PRAGMA wal_autocheckpoint=0")
        writer.execute("update trial_user_attributes set value_json = '0.5' where key = 'val_acc' and trial_id = "
                       "(select max(trial_id) from trials where state = 'COMPLETE')")
        writer.commit()
        assert Path(f"{folder / 'study.db'}-wal").stat().st_size > 0
        assert load_study(folder).trials[-1].user_attrs["val_acc"] == 0.5
    finally:
        writer.close()

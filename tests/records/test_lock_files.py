"""Issue #21: every lock or side file the harness opens goes through one helper (``_config.open_lock``) that
refuses what is not a regular file -- a FIFO (``open(..., "a")`` of one waits for a reader for ever), a device, a
folder, a symlink to one -- in one line naming it, before anything is written.  Optuna's journal lock (a symlink
to the journal) is checked the same way: anything else in its place is refused instead of being waited on for
30 s and then renamed or deleted."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers.planted import plant

from nas_harness._config import open_lock
from nas_harness.errors import ConfigError

pytestmark = pytest.mark.timeout(60)  # a regression blocks on a FIFO: fail, do not hang the suite

KINDS = ["fifo", "device", "folder", "symlink-to-folder", "symlink-to-fifo"]


def refused(fn: Callable[[], object], *needles: str) -> str:
    with pytest.raises(ConfigError) as info:
        fn()
    line = str(info.value)
    assert "\n" not in line and all(n in line for n in needles), line
    return line


@pytest.mark.parametrize("kind", KINDS)
def test_open_lock_refuses_what_is_not_a_regular_file(tmp_path: Path, kind: str) -> None:
    lock = tmp_path / "x.lock"
    plant(lock, kind)
    line = refused(lambda: open_lock(lock, "label"), "label")
    assert "not a regular file" in line or "a folder" in line, line


def test_open_lock_creates_and_reopens_a_regular_file(tmp_path: Path) -> None:
    import fcntl

    lock = tmp_path / "x.lock"
    with open_lock(lock) as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
    assert lock.is_file()
    with open_lock(lock) as fh:  # an existing one is reused
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)


@pytest.mark.parametrize("kind", KINDS)
def test_the_storage_lock_beside_a_sqlite_or_journal_file(tmp_path: Path, kind: str) -> None:
    from nas_harness.records import StorageLock

    for url, file in ((f"sqlite:///{tmp_path}/a/study.db", tmp_path / "a/study.db"),
                      (f"journal:{tmp_path}/b/study.log", tmp_path / "b/study.log")):
        plant(Path(f"{file}.nas-lock"), kind)

        def take(url: str = url) -> None:
            with StorageLock(url):
                pass

        refused(take, "run.storage", ".nas-lock")
        assert not file.exists()


@pytest.mark.parametrize("kind", [*KINDS, "regular-file", "symlink-elsewhere"])
def test_a_journal_lock_that_is_not_optunas_is_refused_and_the_journal_kept(tmp_path: Path, kind: str) -> None:
    from nas_harness.records import open_storage

    journal = tmp_path / "study.log"
    url = f"journal:{journal}"
    import optuna

    optuna.create_study(storage=open_storage(url), study_name="s").add_trial(
        optuna.trial.create_trial(value=1.0))
    before = journal.read_bytes()
    lock = tmp_path / "study.log.lock"
    if kind == "regular-file":
        lock.write_text("x")
    elif kind == "symlink-elsewhere":
        (tmp_path / "other").write_text("x")
        lock.symlink_to(tmp_path / "other")
    else:
        plant(lock, kind)
    for create in (True, False):
        refused(lambda create=create: open_storage(url, create=create), "run.storage", "study.log.lock",
                "move it away")
    assert journal.read_bytes() == before
    assert os.path.lexists(lock)  # not deleted: it is the user's to move


def test_optunas_own_journal_lock_left_by_a_killed_worker_passes(tmp_path: Path) -> None:
    from nas_harness.records import open_storage

    journal = tmp_path / "study.log"
    journal.write_text("")
    (tmp_path / "study.log.lock").symlink_to(journal)  # what a worker killed while appending leaves
    open_storage(f"journal:{journal}", create=False)


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_the_supernet_training_lock(tmp_path: Path, kind: str) -> None:
    from nas_harness.supernet._train import file_lock

    lock = tmp_path / "supernet.lock"
    plant(lock, kind)

    def take() -> None:
        with file_lock(lock):
            pass

    refused(take, "supernet", "supernet.lock")


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_the_latency_table_lock(tmp_path: Path, kind: str) -> None:
    from nas_harness.latency.table import LatencyTable, device_fingerprint

    table = LatencyTable.open(tmp_path / "t.json", device_fingerprint("cpu", 1))
    plant(tmp_path / "t.json.lock", kind)

    def take() -> None:
        with table.locked():
            pass

    refused(take, "latency table lock", "t.json.lock")
    assert not (tmp_path / "t.json").exists()


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_the_tracking_folder_lock(tmp_path: Path, kind: str) -> None:
    from nas_harness.tracking._mlflow import _folder_lock

    plant(tmp_path / "mlruns" / ".lock", kind)

    def take() -> None:
        with _folder_lock(tmp_path / "mlruns"):
            pass

    refused(take, "tracking", ".lock")


def test_search_with_a_fifo_as_its_storage_lock_is_one_line_and_exit_2(tmp_path: Path, monkeypatch,
                                                                      capsys) -> None:
    from helpers.studies import tiny_dict, to_toml

    from nas_harness.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.toml").write_text(to_toml(tiny_dict(tmp_path, name="locked")))
    lock = tmp_path / "results" / "locked" / "study.db.nas-lock"
    plant(lock, "fifo")
    assert main(["search", "s.toml"]) == 2
    err = [ln for ln in capsys.readouterr().err.strip().splitlines() if ln.strip()]
    assert len(err) == 1 and "study.db.nas-lock" in err[-1] and "FIFO" in err[-1], err
    assert not (tmp_path / "results" / "locked" / "study.db").exists()


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_report_output_that_is_not_a_regular_file_is_refused_before_anything_is_written(
        tmp_path: Path, kind: str, monkeypatch, capsys) -> None:
    from helpers.fakes import study_folder

    from nas_harness.cli import main

    monkeypatch.chdir(tmp_path)
    folder = study_folder(tmp_path / "results", "fake")
    plant(folder / "report.md", kind)
    capsys.readouterr()
    assert main(["report", "results/fake", "--no-figures"]) == 2
    err = [ln for ln in capsys.readouterr().err.strip().splitlines() if ln.strip()]
    assert len(err) == 1 and "report.md" in err[0] and "not a regular file" in err[0], err
    assert not (folder / "report.html").exists() and not (folder / "trials.csv").exists()

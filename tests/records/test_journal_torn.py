"""Issue #21: a journal whose last line is torn (a crash or a full disk mid-append) is repaired before anything
is appended (a copy of the whole file is kept, one warning line says so); a journal damaged in the middle is
refused in one line naming the file; a storage that keeps nothing is refused."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import optuna
import pytest

from nas_harness.errors import ConfigError
from nas_harness.records import open_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _study_with_trials(path: Path, n: int) -> None:
    study = optuna.create_study(storage=open_storage(f"journal:{path}"), study_name="s")
    for i in range(n):
        study.add_trial(optuna.trial.create_trial(value=float(i), params={}, distributions={}))


def _values(path: Path) -> list[float]:
    study = optuna.load_study(storage=open_storage(f"journal:{path}", create=False), study_name="s")
    return [t.value for t in study.trials]


TORN = [b'{"op_code": 6, "worker_id": "x", "study_id": 0, "datetime_st', b'{"op_', b"\x00\x00\x00\x00"]


@pytest.mark.parametrize("torn", TORN, ids=["mid-json", "short", "zeros-of-a-full-disk"])
def test_a_torn_last_line_is_cut_off_before_the_next_append_and_a_copy_is_kept(tmp_path: Path, torn: bytes) -> None:
    log = tmp_path / "j.log"
    _study_with_trials(log, 2)
    whole = log.read_bytes() + torn
    log.write_bytes(whole)
    assert _values(log) == [0.0, 1.0]  # a reader skips the torn tail and changes nothing
    assert log.read_bytes() == whole
    with pytest.warns(RuntimeWarning, match=r"j\.log' ended in a torn line .* a copy of the whole file is kept"):
        storage = open_storage(f"journal:{log}")
    study = optuna.load_study(storage=storage, study_name="s")
    study.add_trial(optuna.trial.create_trial(value=2.0, params={}, distributions={}))
    assert _values(log) == [0.0, 1.0, 2.0]
    copies = list(tmp_path.glob("j.log.torn-*"))
    assert len(copies) == 1 and copies[0].read_bytes() == whole  # nothing that was in the file is lost
    assert all(json.loads(line) for line in log.read_bytes().splitlines())


def test_a_line_torn_by_another_worker_while_this_one_runs_is_cut_before_its_next_append(tmp_path: Path) -> None:
    log = tmp_path / "j.log"
    _study_with_trials(log, 1)
    study = optuna.load_study(storage=open_storage(f"journal:{log}"), study_name="s")
    with log.open("ab") as f:  # another worker killed in the middle of its append
        f.write(TORN[0])
    with pytest.warns(RuntimeWarning, match="torn line"):
        study.add_trial(optuna.trial.create_trial(value=5.0, params={}, distributions={}))
    assert _values(log) == [0.0, 5.0]


def test_a_journal_damaged_in_the_middle_is_refused_naming_the_file_and_line(tmp_path: Path) -> None:
    log = tmp_path / "j.log"
    _study_with_trials(log, 2)
    lines = log.read_bytes().splitlines(keepends=True)
    lines.insert(2, TORN[0] + lines[2])  # what appending after torn bytes used to make
    log.write_bytes(b"".join(lines))
    before = log.read_bytes()
    for create in (True, False):
        with pytest.raises(ConfigError, match=r"j\.log' is not a readable Optuna journal \(line 3 "):
            open_storage(f"journal:{log}", create=create)
    assert log.read_bytes() == before


def test_a_complete_journal_is_opened_without_a_warning(tmp_path: Path) -> None:
    log = tmp_path / "j.log"
    _study_with_trials(log, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        open_storage(f"journal:{log}")
    assert not list(tmp_path.glob("*.torn-*"))


@pytest.mark.parametrize("url", ["sqlite:///:memory:", "sqlite://", "sqlite+pysqlite:///:memory:",
                                 "sqlite:///file:mem?mode=memory&uri=true"])
def test_storages_that_keep_nothing_are_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="keeps nothing"):
        open_storage(url)

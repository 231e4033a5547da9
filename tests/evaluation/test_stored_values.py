"""Issue #21, stored values: every path that reads trial or study attributes back checks them, not only the
study readers.  A value tampered behind the harness's back (text, 1e308, NaN, a list where a number is expected)
in an ablation's, scaling-curves', confirm's or fidelity's runs, a study's recipe, a trial a tracker would log, a
scaling study's multipliers or a recorded benchmark table is ONE line naming the storage (or file), the study, the
trial and the key, exit 2, and nothing stored is changed."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from helpers.studies import TINY_ARCH, stored_ablation, tiny_curves

from nas_harness.cli import main
from nas_harness.errors import ConfigError

BAD = {"text": "abc", "huge": 1e308, "nan": float("nan"), "list": [0.5]}


def set_attr(db: Path, key: str, value: Any, trial: int | None = None) -> None:
    """Change one stored attribute as another program would (``trial``: that trial's user attribute)."""
    con = sqlite3.connect(db)
    blob = json.dumps(value)  # NaN is written as NaN, which Optuna's JSON reader takes
    if trial is None:
        n = con.execute("update study_user_attributes set value_json = ? where key = ?", (blob, key)).rowcount
        if n == 0:
            con.execute("insert into study_user_attributes(study_id, key, value_json) values "
                        "((select min(study_id) from studies), ?, ?)", (key, blob))
    else:
        n = con.execute("update trial_user_attributes set value_json = ? where key = ? and trial_id = "
                        "(select trial_id from trials where number = ?)", (blob, key, trial)).rowcount
        assert n == 1, (key, trial)
    con.commit()
    con.close()


def content(db: Path) -> list[str]:
    """What a SQLite file holds (its SQL dump): the same after a command that changed nothing, whatever journal
    mode the command opened it in."""
    con = sqlite3.connect(db)
    try:
        return list(con.iterdump())
    finally:
        con.close()


def one_line(argv: list[str], capsys: pytest.CaptureFixture, *needles: str) -> str:
    assert main(argv) == 2, argv
    err = [ln for ln in capsys.readouterr().err.strip().splitlines() if ln.strip()]
    assert len(err) == 1 and "Traceback" not in err[0], err
    assert all(n in err[0] for n in needles), err
    return err[0]


# ------------------------------------------------------------------------------ ablation and scaling-curves runs

@pytest.mark.parametrize("bad", list(BAD))
def test_a_tampered_ablation_run_is_one_line(tmp_path: Path, bad: str, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    _, db = stored_ablation(tmp_path)
    assert main(["ablate", "a.toml", "--report-only", "--no-figure"]) == 0  # the untampered store reports
    capsys.readouterr()
    set_attr(db, "test_acc", BAD[bad], trial=1)
    before = content(db)
    one_line(["ablate", "a.toml", "--report-only", "--no-figure"], capsys, "ablation.db", "study 'tiny'",
             "trial 1", "stored test_acc")
    one_line(["ablate", "a.toml", "--no-figure", "--no-progress"], capsys, "trial 1", "stored test_acc")
    assert content(db) == before  # not even the ablation's settings were recorded


@pytest.mark.parametrize(("key", "value", "needle"), [
    ("seed", "x", "stored seed = 'x'"),
    ("seed", 1.5, "stored seed = 1.5"),
    ("variant", 7, "stored variant = 7"),
])
def test_a_tampered_run_key_is_one_line(tmp_path: Path, key: str, value: Any, needle: str,
                                        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    _, db = stored_ablation(tmp_path)
    set_attr(db, key, value, trial=2)
    one_line(["ablate", "a.toml", "--report-only", "--no-figure"], capsys, "trial 2", needle)


@pytest.mark.parametrize(("key", "value", "needle"), [
    ("recipe", "x", "stored recipe = 'x' is not a table"),
    ("recipe", [1, 2], "stored recipe = [1, 2] is not a table"),
    ("archs", 5, "stored archs = 5 is not a table"),
    ("archs", {"baseline": 3}, "stored archs = {'baseline': 3} is not a table of arch strings"),
])
def test_a_tampered_ablation_recipe_is_one_line_and_nothing_runs(
        tmp_path: Path, key: str, value: Any, needle: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    _, db = stored_ablation(tmp_path)
    set_attr(db, key, value)
    before = content(db)
    one_line(["ablate", "a.toml", "--no-figure", "--no-progress", "--seeds", "3"], capsys, "ablation.db",
             "study 'tiny'", needle)
    assert content(db) == before


def test_a_tampered_scaling_curves_run_is_one_line(tmp_path: Path) -> None:
    from nas_harness._config import read_toml
    from nas_harness.records import TrialRecord
    from nas_harness.scaling_curves import CurvesStore, load_records
    from nas_harness.scaling_curves.config import parse_scaling_curves

    (tmp_path / "c.toml").write_text(tiny_curves(seeds=1, curves="width = [1.0, 2.0]"))
    raw = read_toml(tmp_path / "c.toml")
    raw.setdefault("run", {})["results_dir"] = str(tmp_path / "results")
    cfg = parse_scaling_curves(raw)
    store = CurvesStore(cfg.storage_url, cfg.name)
    store.bind(cfg)
    for key, point in cfg.networks().items():
        store.add(key, 0, TrialRecord(arch=str(point.arch), val_acc=0.5, val_n=64, macs=1000, params=10,
                                      full_budget=True), None)
    assert len(load_records(cfg)) == len(cfg.networks())
    set_attr(tmp_path / "results" / "tiny" / "curves.db", "val_acc", 1e308, trial=0)
    with pytest.raises(ConfigError, match=r"curves\.db: study 'tiny', trial 0: stored val_acc = 1e\+308 is not a "
                                          r"number in \[0, 1\]"):
        load_records(cfg)


# ------------------------------------------------------------------------------ a study's recipe (confirm, fidelity)

@pytest.fixture
def fake_study(tmp_path: Path) -> Path:
    """The shared fake study (real Optuna, fake-but-valid trials) copied to results/fake/study.db."""
    from helpers.fakes import study_folder

    return study_folder(tmp_path / "results", "fake") / "study.db"


@pytest.mark.parametrize(("key", "value", "needle"), [
    ("comparable", "x", "stored comparable = 'x' is not a table"),
    ("comparable", {"seed": "x"}, "stored comparable.seed = 'x'"),
    ("comparable", {"seed": 1e308}, "stored comparable.seed = 1e+308"),
    ("comparable", {"seed": 0, "train": [1]}, "stored comparable.train = [1] is not a table"),
    ("config", {"data": "x", "train": {}}, "stored config.data = 'x' is not a table"),
    ("config", {"data": {"dataset": "fashion_mnist"}, "train": {"epochs": "x"}}, "train.epochs"),
])
def test_a_tampered_study_recipe_is_one_line_for_confirm_and_fidelity(
        fake_study: Path, key: str, value: Any, needle: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(fake_study.parents[2])
    set_attr(fake_study, key, value)
    before = content(fake_study)
    for cmd in ("confirm", "fidelity"):
        one_line([cmd, "results/fake", "--no-figure"] if cmd == "confirm" else [cmd, "results/fake"], capsys,
                 "study.db", "study 'fake'", needle)
    assert content(fake_study) == before


def test_a_tampered_last_stop_is_one_line_for_report(fake_study: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(fake_study.parents[2])
    set_attr(fake_study, "last_stop", [1, 2])
    one_line(["report", "results/fake", "--no-figures"], capsys, "study 'fake'", "stored last_stop = [1, 2]")


# ------------------------------------------------------------------------------ trackers, scaling studies, benchmark

def test_a_tracker_never_logs_a_tampered_value() -> None:
    import optuna

    from nas_harness.tracking import entry_of_trial

    t = optuna.trial.create_trial(value=0.5, user_attrs={"arch": "x", "val_acc": 1e308})
    t.number = 0
    with pytest.raises(ConfigError, match=r"study 's', trial 0: stored val_acc = 1e\+308 is not a number in"):
        entry_of_trial(t, where="study 's'")


def test_a_tampered_scaling_multiplier_is_one_line(tmp_path: Path) -> None:
    import optuna

    from nas_harness.results.scaling import scaling_rows

    study = optuna.create_study(storage=f"sqlite:///{tmp_path}/s.db", study_name="s-scaling", direction="maximize")
    study.add_trial(optuna.trial.create_trial(value=0.5, user_attrs={"arch": "a", "val_acc": 0.5, "alpha": "x",
                                                                       "beta": 1.1, "gamma": 1.1}))
    with pytest.raises(ConfigError, match=r"s\.db: study 's-scaling', trial 0: stored alpha = 'x'"):
        scaling_rows(study)


@pytest.mark.parametrize(("column", "value"), [("val_acc", "abc"), ("val_acc", "1e308"), ("macs", "-5"),
                                               ("val_acc", "[0.5]")])
def test_a_tampered_recorded_table_is_one_line_naming_file_trial_and_column(tmp_path: Path, column: str,
                                                                            value: str) -> None:
    import csv

    from nas_harness.benchmark._run import recorded_table

    header = ["number", "state", "arch", "val_acc", "macs", "full_budget", "rejected"]
    rows = [[0, "COMPLETE", TINY_ARCH, 0.5, 1000, True, ""],
            [1, "COMPLETE", TINY_ARCH.replace("k3", "k5", 1), 0.6, 2000, True, ""]]

    def write() -> None:
        with (tmp_path / "trials.csv").open("w", newline="") as f:
            csv.writer(f).writerows([header, *rows])

    write()
    assert len(recorded_table([str(tmp_path)]).archs) == 2  # untampered: a table of 2 archs
    rows[1][header.index(column)] = value
    write()
    with pytest.raises(ConfigError, match=rf"trials\.csv': trial 1: {column} = "):
        recorded_table([str(tmp_path)])

"""A stored trial ROW changed behind the harness's back (a NULL objective value, as Optuna stores NaN; a NULL
parameter value; a value row for a RUNNING trial; a COMPLETE trial without its value row; attribute or
distribution text that is not JSON) is ONE line naming the storage, the study and the trial, exit 2, on every
reader of a study (report, export, plot, confirm, fidelity, an ablation's report), on a continued search and on
`search --check`, never a traceback from Optuna's storage: they all read trials through
:func:`nas_harness.results.stored_trials`."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import optuna
import pytest
from helpers.studies import stored_ablation, tiny_dict, write_study
from optuna.distributions import CategoricalDistribution

from nas_harness.cli import main
from nas_harness.errors import ConfigError

TAMPER = {
    "null value": ("update trial_values set value = NULL where trial_id = (select trial_id from trials where "
                   "number = 1)", "NULL objective"),
    "null param": ("update trial_params set param_value = NULL where trial_id = (select trial_id from trials where "
                   "number = 1) and param_name = 's1_kernel'", "Optuna cannot read it"),
    "running with value": ("update trials set state = 'RUNNING', datetime_complete = NULL where number = 1",
                           "a RUNNING trial with a stored objective value"),
    "complete without value": ("delete from trial_values where trial_id = (select trial_id from trials where "
                               "number = 1)", "a COMPLETE trial without its objective value"),
    "user attr not json": ("update trial_user_attributes set value_json = 'not json{' where key = 'macs' and "
                           "trial_id = (select trial_id from trials where number = 1)", "not JSON"),
    "distribution not json": ("update trial_params set distribution_json = 'nope{' where trial_id = (select trial_id "
                              "from trials where number = 1) and param_name = 's1_kernel'", "not JSON"),
    "unknown state": ("update trials set state = 'BOGUS' where number = 1", "LookupError"),
}
READERS = {
    "report": ["report", "{dir}", "--no-figures", "--out", "{tmp}/out"],
    "export": ["export", "{dir}", "--rank", "1"],
    "plot": ["plot", "{dir}", "--out", "{tmp}/out"],
    "confirm": ["confirm", "{dir}", "--top", "1", "--seeds", "1"],
    "fidelity": ["fidelity", "{dir}", "--top", "1", "--seeds", "1"],
    "search": ["search", "{toml}"],
    "search --check": ["search", "{toml}", "--check"],
}


def _study(tmp_path: Path) -> tuple[Path, Path]:
    """(study file, results folder) of a study made by nas-harness holding two finished trials with the space's
    parameters (trial 0 and trial 1); run.n_trials = 2, so a search on it only checks and stops."""
    from nas_harness.records import open_storage
    from nas_harness.study.config import validate
    from nas_harness.study.search import open_study

    toml = write_study(tmp_path, objective={"kind": "accuracy"})
    cfg = validate(tiny_dict(tmp_path, objective={"kind": "accuracy"}))
    cfg.study_dir.mkdir(parents=True, exist_ok=True)
    study, _ = open_study(cfg, open_storage(cfg.storage_url))
    space = cfg.search_space()
    dists = {k: CategoricalDistribution(v) for k, v in space.param_grid().items()}
    arch = space.sample(random.Random(0))
    params = space.params_of(arch)
    for acc in (0.5, 0.6):
        study.add_trial(optuna.trial.create_trial(
            value=acc, params=params, distributions={k: dists[k] for k in params},
            user_attrs={"arch": str(arch), "val_acc": acc, "val_n": 64, "macs": 1000, "params": 100,
                        "full_budget": True, "epochs": 1.0, "epochs_planned": 1.0}))
    return toml, cfg.study_dir


def _run(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, list[str]]:
    rc = main(argv)
    return rc, [ln for ln in capsys.readouterr().err.strip().splitlines() if ln.strip()]


@pytest.mark.parametrize("tamper", list(TAMPER))
def test_a_tampered_trial_row_is_one_line_on_every_reader_and_on_search(
        tmp_path: Path, tamper: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    toml, folder = _study(tmp_path)
    fill = {"dir": str(folder), "tmp": str(tmp_path), "toml": str(toml)}
    assert _run([a.format(**fill) for a in READERS["report"]], capsys)[0] == 0  # the untampered study reports
    sql, hint = TAMPER[tamper]
    with sqlite3.connect(folder / "study.db") as con:
        assert con.execute(sql).rowcount == 1
    con.close()
    for name, argv in READERS.items():
        rc, err = _run([a.format(**fill) for a in argv], capsys)
        assert rc == 2 and len(err) == 1 and "Traceback" not in err[0], (name, err)
        for needle in (f"storage sqlite:///{folder / 'study.db'}", "study 'tiny', trial 1:",
                       "a stored trial row is inconsistent", hint, "changed outside nas-harness?"):
            assert needle in err[0], (name, needle, err[0])


def test_stored_trials_reads_a_consistent_study_and_names_the_row_optuna_cannot_read(tmp_path: Path) -> None:
    from nas_harness.results import load_study, stored_trials

    _, folder = _study(tmp_path)
    assert [t.number for t in stored_trials(load_study(folder))] == [0, 1]
    with sqlite3.connect(folder / "study.db") as con:
        con.execute(TAMPER["null value"][0])
    con.close()
    with pytest.raises(ConfigError, match=r"^storage sqlite:///.*: study 'tiny', trial 1: a stored trial row is "
                                          r"inconsistent \(a NULL objective or intermediate value"):
        load_study(folder)


def test_a_tampered_ablation_row_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    stored_ablation(tmp_path)
    argv = ["ablate", "a.toml", "--report-only", "--no-figure"]
    assert _run(argv, capsys)[0] == 0
    with sqlite3.connect(tmp_path / "results" / "tiny" / "ablation.db") as con:
        assert con.execute(TAMPER["null value"][0]).rowcount == 1
    con.close()
    rc, err = _run(argv, capsys)
    assert rc == 2 and len(err) == 1, err
    assert "ablation.db" in err[0] and "study 'tiny', trial 1: a stored trial row is inconsistent" in err[0], err


def test_a_study_attribute_that_is_not_json_is_one_line_on_search(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    toml, folder = _study(tmp_path)
    with sqlite3.connect(folder / "study.db") as con:
        assert con.execute("update study_user_attributes set value_json = 'x{' where key = 'objective'").rowcount == 1
    con.close()
    for argv in (["search", str(toml)], ["search", str(toml), "--check"], ["report", str(folder)]):
        rc, err = _run(argv, capsys)
        assert rc == 2 and len(err) == 1 and "JSONDecodeError" in err[0], (argv, err)
        assert "study.db" in err[0], err

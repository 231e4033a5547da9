"""A study is one experiment: changed settings are refused naming the key, --fork starts a new study from the
old archs, the thread count is fixed per study, and the same seed gives the same numbers on a busy machine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from helpers.studies import tiny_dict, write_study

from nas_harness.cli import main
from nas_harness.errors import ConfigError
from nas_harness.study.config import validate
from nas_harness.study.search import first_difference, run_search

pytestmark = pytest.mark.slow


def _vals(cfg) -> list[float]:
    study = optuna.load_study(study_name=cfg.name, storage=cfg.storage_url)
    return [t.user_attrs["val_acc"] for t in study.trials]


def test_first_difference() -> None:
    assert first_difference({"a": {"b": 1, "c": 2}}, {"a": {"b": 1, "c": 3}}) == ("a.c", 2, 3)
    assert first_difference({"a": 1}, {"a": 1, "b": 2}) == ("b", "(absent)", 2)
    assert first_difference({"a": [1, 2]}, {"a": [1, 2]}) is None


@pytest.mark.parametrize(("change", "key"), [
    ({"train": {"epochs": 2}}, "train.epochs"),
    ({"space": {"kernels": [3, 5, 7]}}, "space.stages.1.kernels"),
    ({"objective": {"target_macs": 20e6}}, "objective.target_macs"),
    ({"seed": 1}, "seed"),
    ({"train": {"threads": 2}}, "train.threads"),
])
def test_resuming_with_a_different_experiment_is_refused(tmp_path: Path, change: dict, key: str, capsys) -> None:
    path = write_study(tmp_path, run={"n_trials": 1, "progress": False, "plots": False})
    assert main(["search", str(path)]) == 0
    changed = write_study(tmp_path, run={"n_trials": 2, "progress": False, "plots": False}, **change)
    capsys.readouterr()
    assert main(["search", str(changed)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith(f"nas-harness search: error: {key}: study 'tiny'")
    assert "--fork" in err
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path / 'results/tiny/study.db'}")
    assert len(study.trials) == 1  # nothing ran


def test_run_settings_may_change_and_fork_reevaluates_the_old_archs(tmp_path: Path, capsys) -> None:
    path = write_study(tmp_path, sampler={"kind": "random"}, run={"n_trials": 2, "progress": False, "plots": False})
    assert main(["search", str(path)]) == 0
    # how to run may change: timeout, heartbeat, sampler, progress
    assert main(["search", str(path), "--n-trials", "3", "--timeout", "600"]) == 0
    old = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path / 'results/tiny/study.db'}")
    old_archs = [t.user_attrs["arch"] for t in old.trials]
    assert len(old_archs) == 3
    longer = write_study(tmp_path, sampler={"kind": "random"}, train={"epochs": 2},
                         run={"n_trials": 3, "progress": False, "plots": False})
    assert main(["search", str(longer), "--fork", "tiny-2ep"]) == 0
    new = optuna.load_study(study_name="tiny-2ep", storage=f"sqlite:///{tmp_path / 'results/tiny-2ep/study.db'}")
    unique = list(dict.fromkeys(old_archs))  # each old arch once, in the old order
    forked = [t for t in new.trials if "forked_from" in t.user_attrs]
    assert [t.user_attrs["arch"] for t in forked] == unique
    assert all(t.user_attrs["forked_from"].startswith("tiny#") and t.user_attrs["epochs"] == 2 for t in forked)
    assert len(new.trials) == 3
    assert main(["search", str(longer), "--fork", "tiny-2ep"]) == 0  # re-running continues the fork
    assert len(optuna.load_study(study_name="tiny-2ep",
                                 storage=f"sqlite:///{tmp_path / 'results/tiny-2ep/study.db'}").trials) == 3


def test_threads_are_fixed_at_creation_and_recorded(tmp_path: Path) -> None:
    d = tiny_dict(tmp_path, run={"n_trials": 1})
    del d["train"]["threads"]
    cfg = validate(d)
    summary = run_search(cfg)
    study = optuna.load_study(study_name=cfg.name, storage=cfg.storage_url)
    fixed = study.user_attrs["comparable"]["train"]["threads"]
    assert isinstance(fixed, int) and fixed >= 1 and summary.threads == fixed
    assert study.trials[0].user_attrs["threads"] == fixed
    d["run"]["n_trials"] = 2
    assert run_search(validate(d)).threads == fixed  # reused on resume
    with pytest.raises(ConfigError, match=r"train\.threads"):
        run_search(validate({**d, "train": {**d["train"], "threads": fixed + 1}}))


def test_same_seed_same_numbers_next_to_a_busy_loop(tmp_path: Path) -> None:
    """The default (a thread count fixed per study) does not depend on what else runs on the machine."""
    def study(name: str) -> list[float]:
        d = tiny_dict(tmp_path, name=name, sampler={"kind": "random"}, trial={"cache": False},
                      run={"n_trials": 3})
        del d["train"]["threads"]
        cfg = validate(d)
        run_search(cfg)
        return _vals(cfg)

    idle = study("idle")
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        busy = study("busy")
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    assert busy == idle

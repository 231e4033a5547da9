"""Compound-scaling search: the alpha*beta^2*gamma^2 ~= 2 grid, training at phi=1, best triple, resume."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from helpers.studies import tiny_dict, write_study

from nas_harness.cli import main
from nas_harness.errors import ConfigError
from nas_harness.study.config import validate
from nas_harness.study.scaling_search import run_scaling_search, valid_triples

GRID = {"alphas": [1.0, 2.0], "betas": [1.0], "gammas": [1.0, 1.42], "tolerance": 0.05}


def test_valid_triples() -> None:
    assert valid_triples([1.0, 2.0], [1.0], [1.0, 1.42], 0.05) == [(1.0, 1.0, 1.42), (2.0, 1.0, 1.0)]
    paper = valid_triples([1.2], [1.1], [1.15], 0.1)  # EfficientNet's 1.2 * 1.1^2 * 1.15^2 = 1.92
    assert paper == [(1.2, 1.1, 1.15)]
    with pytest.raises(ConfigError, match=r"^scaling\.tolerance"):
        valid_triples([1.2], [1.1], [1.15], 0.01)


@pytest.mark.slow
def test_scaling_search_trains_each_triple_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = validate(tiny_dict(tmp_path, scaling=GRID))
    s = run_scaling_search(cfg)
    assert s.triples == 2 and len(s.rows) == 2
    assert s.best == max(s.rows, key=lambda r: r["val_acc"])
    assert sum(len(g.members) for g in s.groups) == 2 and s.groups[0].val_acc == s.best["val_acc"]
    assert s.groups[0].val_n == 64 and s.groups[0].ci_low < s.best["val_acc"] < s.groups[0].ci_high
    study = optuna.load_study(study_name="tiny-scaling", storage=cfg.storage_url)
    assert study.user_attrs["comparable"]["objective"]["kind"] == "accuracy"
    by_gamma = {t.params["gamma"]: t.user_attrs for t in study.trials}
    assert by_gamma[1.42]["resolution"] == round(16 * 1.42) and by_gamma[1.0]["resolution"] == 16
    assert by_gamma[1.42]["macs_resolution"] == round(224 * 1.42)
    assert by_gamma[1.0]["depth"] == 2.0  # alpha = 2 doubles the repeats
    # both triples roughly double the MACs of the base at phi = 1
    for ua in by_gamma.values():
        assert 1.5 < ua["flops_factor"] < 2.5
    again = run_scaling_search(cfg)  # resume: nothing retrained
    assert len(optuna.load_study(study_name="tiny-scaling", storage=cfg.storage_url).trials) == 2
    assert again.best == s.best
    path = write_study(tmp_path, scaling=GRID)
    assert main(["search", str(path), "--scaling"]) == 0
    out = capsys.readouterr().out
    assert "distinct network(s)" in out and "best triple:" in out and "val_acc=" in out


def test_a_new_scaling_search_optimises_plain_accuracy_and_an_old_one_keeps_its_record() -> None:
    from nas_harness.objectives import Objective
    from nas_harness.study.scaling_search import scaling_objective

    assert scaling_objective(None) == Objective(kind="accuracy")
    legacy = {"objective": {"kind": "budget", "max_macs": 1e15}}  # what scaling studies stored before
    assert scaling_objective(legacy) == Objective(kind="budget", max_macs=1e15)  # same record: it resumes

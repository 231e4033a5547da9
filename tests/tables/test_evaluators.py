"""The ``table`` and ``surrogate`` evaluators: exact lookups, a recorded miss, a reproducible surrogate split with
its held-out quality stored, and studies on them locally and on Ray."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import optuna
import pytest
from helpers.studies import tiny_dict

from nas_harness.arch import parse_arch
from nas_harness.errors import ConfigError, TrialError
from nas_harness.evaluators import EvaluatorConfig
from nas_harness.presets import efficientnet_b0
from nas_harness.study.config import validate
from nas_harness.study.search import run_search
from nas_harness.tables import (
    IMAGENET_VAL_N,
    SurrogateEvaluator,
    TableEvaluator,
    accel_nasbench,
    accel_nasbench_surrogate,
    fit_surrogate,
    split,
)
from nas_harness.trial import TrialSpec, run_trial

SPACE = {"kernels": [3, 5], "expands": [1, 4, 6], "se": [True, False],
         "stages": {str(i): {"repeats": [1, 2, 3, 4] if i == 6 else [1, 2, 3]} for i in range(1, 8)}}


def _spec(arch, evaluator) -> TrialSpec:  # type: ignore[no-untyped-def]
    cfg = validate(tiny_dict(Path("/nonexistent")))
    return TrialSpec(arch=arch, data=cfg.data, train=cfg.train_config(), seed=3, evaluator=evaluator)


def test_table_trials_return_the_records_values_exactly() -> None:
    table = accel_nasbench()
    ev = TableEvaluator()
    for i in (0, 1, 2261, len(table) - 1):
        rec = run_trial(_spec(parse_arch(table.archs[i]), ev))
        row = table.row(i)
        assert rec.val_acc == row["val_acc"] and rec.val_n == IMAGENET_VAL_N and rec.epochs == 0.0
        assert rec.params == row["params"] and rec.macs == row["macs"]  # the study's (fvcore) MACs
        assert rec.extra["macs_thop"] == row["macs_thop"] and rec.extra["throughput_a100"] == row["throughput_a100"]
        assert rec.evaluator == "table" and rec.evaluator_id == ev.fingerprint and rec.full_budget


def test_an_arch_outside_the_table_is_a_trial_error_never_a_substitute() -> None:
    with pytest.raises(TrialError, match="arch not in the accel_nasbench table"):
        TableEvaluator().evaluate(_spec(efficientnet_b0(), TableEvaluator()))
    with pytest.raises(TrialError, match=r"outside the accel_nasbench space.*kernel 7"):
        SurrogateEvaluator().evaluate(_spec(efficientnet_b0().replace_stages(kernel=7), SurrogateEvaluator()))
    with pytest.raises(ConfigError, match=r"^surrogate\.split_seed = -1 is invalid"):
        EvaluatorConfig(kind="surrogate", options={"split_seed": -1})
    with pytest.raises(ConfigError, match=r"^table\.name = .*accel_nasbench"):
        EvaluatorConfig(kind="table", options={"name": "nasbench201"})


def test_the_surrogate_split_is_reproducible_from_its_seed_and_its_quality_is_recorded() -> None:
    a, b = split(5125, 0), split(5125, 0)
    assert all(np.array_equal(x, y) for x, y in zip(a, b)) and [len(x) for x in a] == [4100, 512, 513]
    assert not np.array_equal(split(5125, 1)[2], a[2])
    assert sorted(np.concatenate(a).tolist()) == list(range(5125))
    fit = accel_nasbench_surrogate(0)
    again = fit_surrogate(accel_nasbench(), 0)  # a deterministic refit: the same trees
    X = accel_nasbench().features[fit.test_idx]
    assert np.array_equal(fit.predict(X), again.predict(X)) and fit.metrics == again.metrics
    assert fit.metrics["test_kendall_tau"] >= 0.85 and fit.metrics["test_rmse"] < 0.01
    assert fit.summary()["split"]["test_rows"] == fit.test_idx.tolist()


def _study(tmp_path: Path, kind: str, **kw: object) -> dict:
    d = tiny_dict(tmp_path, base_width=1.0, base_depth=1.0, space=SPACE, evaluator={"kind": kind},
                  **{"objective": {"kind": "multi", "cost": "params"}, **kw})
    d["name"] = f"anb-{kind}"
    return d


def test_a_surrogate_and_a_table_study_run_locally(tmp_path: Path) -> None:
    cfg = validate(_study(tmp_path, "surrogate", sampler={"kind": "tpe", "n_startup_trials": 2},
                          run={"n_trials": 4}))
    assert run_search(cfg).n_complete == 4
    stored = json.loads((cfg.study_dir / "surrogate.json").read_text())
    assert stored["seed"] == 0 and stored["test_kendall_tau"] >= 0.85
    fit = accel_nasbench_surrogate(0)
    for t in optuna.load_study(study_name=cfg.name, storage=cfg.storage_url).trials:
        assert t.user_attrs["evaluator"] == "surrogate"
        assert t.values[0] == pytest.approx(fit.predict_arch(parse_arch(t.user_attrs["arch"])), abs=0)
    # a table study: the enqueued record is looked up (tests/tables/test_sampler.py: the search among records)
    table = accel_nasbench()
    cfg = validate(_study(tmp_path, "table", sampler={"kind": "random", "enqueue": [table.archs[7]]},
                          run={"n_trials": 1, "max_failures": 3}))
    run_search(cfg)
    trials = optuna.load_study(study_name=cfg.name, storage=cfg.storage_url).trials
    assert trials[0].values[0] == table.row(7)["val_acc"]


@pytest.mark.ray
@pytest.mark.slow
def test_a_surrogate_study_on_ray(tmp_path: Path, ray_local: None) -> None:
    d = _study(tmp_path, "surrogate", sampler={"kind": "random"}, run={"n_trials": 3},
               ray={"cpus_per_trial": 1.0, "max_concurrent": 2})
    d["run"]["backend"] = "ray"
    cfg = validate(d)
    assert run_search(cfg).n_complete == 3
    fit = accel_nasbench_surrogate(0)
    for t in optuna.load_study(study_name=cfg.name, storage=cfg.storage_url).trials:
        assert t.user_attrs["backend"] == "ray" and t.user_attrs["evaluator"] == "surrogate"
        assert t.values[0] == fit.predict_arch(parse_arch(t.user_attrs["arch"]))


@pytest.mark.slow
def test_fidelity_ranks_a_study_against_the_tables_imagenet_accuracies(tmp_path: Path) -> None:
    from nas_harness.evaluation.fidelity import FidelityConfig, run_fidelity

    table = accel_nasbench()
    d = _study(tmp_path, "surrogate", sampler={"kind": "random"}, run={"n_trials": 1},
               objective={"kind": "accuracy"})
    cfg = validate(d)
    run_search(cfg)  # one random arch: not in the table
    study = optuna.load_study(study_name=cfg.name, storage=cfg.storage_url)
    space = cfg.search_space()
    for a in table.archs[:5]:  # five of the table's archs as search trials
        study.enqueue_trial(space.params_of(parse_arch(a)))
    d["run"]["n_trials"] = 6
    run_search(validate(d))
    fid = run_fidelity(cfg.study_dir, FidelityConfig(top=3, random=3, against="table", zero_cost=False),
                       progress=False, figure=False, log=lambda s: None)
    s = fid.summary
    assert s["n_archs"] == 5  # the arch outside the table is a recorded miss, not a substitute
    assert len(fid.failed) == 1
    stored = optuna.load_study(study_name=f"{cfg.name}-fidelity", storage=cfg.storage_url).trials
    done = {t.user_attrs["arch"]: t.user_attrs["val_acc"] for t in stored if t.state.name == "COMPLETE"}
    assert done == {a: table.row(i)["val_acc"] for i, a in enumerate(table.archs[:5])}

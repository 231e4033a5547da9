"""The Ray searcher's bookkeeping without running Ray: what reaches Optuna for finished, scheduler-stopped
(ASHA), failed and over-budget trials."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "study"))
from study_helpers import tiny_dict

from nas_harness.study.config import validate
from nas_harness.study.search import build_task

pytest.importorskip("ray.tune")


def _searcher(tmp_path: Path, **sections):
    from nas_harness.backends.ray import _make_searcher

    cfg = validate(tiny_dict(tmp_path, **sections))
    task = build_task(cfg)
    study = optuna.create_study(study_name="s", directions=task.objective.directions)
    return study, task, _make_searcher(study, task, optuna.samplers.RandomSampler(seed=0))


def _result(metric: str, value: float, attrs: dict, done: bool, state: str = "complete", **extra) -> dict:
    return {metric: value, "training_iteration": int(attrs.get("epochs", 1)), "nas_done": done,
            "nas_state": state, "nas_attrs": json.dumps(attrs), **extra}


def test_finished_stopped_and_failed_trials(tmp_path: Path) -> None:
    study, task, searcher = _searcher(tmp_path)
    configs = [searcher.suggest(f"t{i}") for i in range(3)]
    assert all(set(c) >= {"s1_kernel", "s7_width"} for c in configs)
    assert str(task.space.arch_from_params(configs[0]))  # the trainable can rebuild the arch from the config
    # t0: ran its whole budget
    searcher.on_trial_result("t0", _result("reward", 0.5, {"epochs": 1}, False, "running"))
    searcher.on_trial_complete("t0", _result("reward", 0.6, {"epochs": 1, "full_budget": True}, True,
                                             nas_values=json.dumps([0.6])))
    # t1: stopped by ASHA after epoch 1 (its last result is an epoch report, not the final one)
    searcher.on_trial_result("t1", _result("reward", 0.2, {"epochs": 1}, False, "running"))
    searcher.on_trial_complete("t1", _result("reward", 0.2, {"epochs": 1, "full_budget": False}, False,
                                             "running"))
    # t2: the worker died
    searcher.on_trial_complete("t2", None, error=True)
    t0, t1, t2 = study.trials
    assert t0.state == TrialState.COMPLETE and t0.value == 0.6 and t0.user_attrs["full_budget"] is True
    assert t1.state == TrialState.PRUNED  # not mistaken for a full-budget result
    assert t1.user_attrs["full_budget"] is False and t1.user_attrs["epochs"] == 1
    assert t1.user_attrs["stopped_by"] == "scheduler" and t1.intermediate_values == {1: 0.2}
    assert t2.state == TrialState.FAIL and "worker" in t2.user_attrs["fail_reason"]
    assert study.best_trial.number == 0


def test_budget_constraints_and_multi_objective(tmp_path: Path) -> None:
    study, _, searcher = _searcher(tmp_path, objective={"kind": "multi", "max_macs": 1e6})
    searcher.suggest("a")
    attrs = {"epochs": 0, "macs": 3e6, "rejected": "over_budget", "val_acc": 0.0}
    searcher.on_trial_complete("a", _result("val_acc", 0.0, attrs, True, macs=3e6,
                                            nas_values=json.dumps([0.0, 3e6]), nas_constraints=json.dumps([2.0])))
    (t,) = study.trials
    assert t.state == TrialState.COMPLETE and t.values == [0.0, 3e6]
    assert t.system_attrs["constraints"] == [2.0] and t.user_attrs["rejected"] == "over_budget"
    assert study.best_trials == []  # infeasible trials are not on the front

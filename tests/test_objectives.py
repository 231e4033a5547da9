"""Objectives against hand-computed MnasNet rewards and Optuna's own constraint bookkeeping."""

from __future__ import annotations

import math
import pickle

import optuna
import pytest

from nas_harness.objectives import BudgetConstraints, Objective, mnasnet_reward


def test_mnasnet_reward_soft_and_hard() -> None:
    t = 400e6
    # soft: w = -0.07 on both sides
    assert mnasnet_reward(0.8, 2 * t, t) == pytest.approx(0.8 * 2 ** -0.07)
    assert mnasnet_reward(0.8, 0.5 * t, t) == pytest.approx(0.8 * 0.5 ** -0.07)
    assert mnasnet_reward(0.8, 0.5 * t, t) > 0.8 > mnasnet_reward(0.8, 2 * t, t)
    # hard: no bonus under the target, accuracy halved at 2x the target
    assert mnasnet_reward(0.8, 0.5 * t, t, 0.0, -1.0) == pytest.approx(0.8)
    assert mnasnet_reward(0.8, 2 * t, t, 0.0, -1.0) == pytest.approx(0.4)
    assert mnasnet_reward(0.8, t, t, 0.0, -1.0) == pytest.approx(0.8)  # exactly at T: alpha side
    with pytest.raises(ValueError):
        mnasnet_reward(0.8, 0, t)


def test_objective_kinds_values_and_directions() -> None:
    m = {"val_acc": 0.9, "macs": 200e6, "params": 1e6}
    r = Objective.from_config({"kind": "reward", "target_macs": 400e6, "constraint": "hard"})
    assert r.metric_names == ["reward"] and r.directions == ["maximize"]
    assert r.values(m) == [pytest.approx(0.9)]
    assert r.constraints_func is None
    b = Objective.from_config({"kind": "budget", "max_macs": 100e6, "max_params": 0.0})
    assert b.values(m) == [0.9] and b.budget.over_budget(200e6, 1e6)
    assert not b.budget.over_budget(100e6, 1e9)  # params budget off
    mo = Objective.from_config({"kind": "multi", "cost": "params"})
    with pytest.raises(ValueError, match=r"objective\.alpha"):
        Objective.from_config({"kind": "reward", "alpha": 0.0})  # only with constraint = 'custom'

    assert mo.metric_names == ["val_acc", "params"] and mo.directions == ["maximize", "minimize"]
    assert mo.modes == ["max", "min"] and mo.values(m) == [0.9, 1e6]
    assert mo.rejected_values(m) == [0.0, 1e6]


def test_budget_constraints_values_and_pickle() -> None:
    c = BudgetConstraints(max_macs=100.0, max_params=10.0)
    assert c.values(150, 5) == [pytest.approx(0.5), pytest.approx(-0.5)]
    assert c.values(None, 5)[0] > 1  # unknown cost = infeasible
    assert pickle.loads(pickle.dumps(c)) == c  # Ray checkpoints the sampler


def test_constraints_reach_optuna_and_best_trial_is_feasible() -> None:
    from nas_harness.records import Outcome, TrialRecord, tell

    obj = Objective.from_config({"kind": "budget", "max_macs": 100.0, "max_params": 0.0})
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    for macs, acc in ((50, 0.6), (150, 0.99), (90, 0.7)):
        t = study.ask()
        t.suggest_categorical("x", [1, 2])
        assert tell(study, t._trial_id, Outcome("complete", [acc], TrialRecord(macs=macs), obj.budget.values(macs, 1)))
    cons = [t.system_attrs["constraints"] for t in study.trials]
    assert [c[0] <= 0 for c in cons] == [True, False, True]
    assert study.best_trial.number == 2  # 0.99 (trial 1) is infeasible
    assert [t.constraints for t in study.trials][1] == {"0": pytest.approx(0.5)}


def test_describe_mentions_budget() -> None:
    b = Objective.from_config({"kind": "budget", "max_macs": 2e7, "max_params": 0.0})
    assert "MACs <= 2e+07" in b.describe()
    assert math.isclose(Objective(kind="reward").target_macs, 400e6)


def test_describe_reward_exponent_once_when_alpha_equals_beta() -> None:
    soft = Objective.from_config({"kind": "reward", "target_macs": 2e7})
    assert soft.describe() == "reward = ACC x (MACs/2e+07)^w, w = -0.07"
    hard = Objective.from_config({"kind": "reward", "target_macs": 2e7, "constraint": "hard"})
    assert hard.describe().endswith("w = 0 if MACs <= T else -1")

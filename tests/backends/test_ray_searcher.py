"""Real Tune schedulers on the session's local Ray: a trial that trained its whole budget is COMPLETE, one a
scheduler stopped early is PRUNED with the epochs it trained; and the searcher never overshoots n_trials."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from helpers.studies import tiny_dict
from optuna.trial import TrialState

from nas_harness.backends.ray import outcome_from_result
from nas_harness.study.config import validate
from nas_harness.study.search import run_search

pytest.importorskip("ray.tune")


def test_outcome_from_the_last_result() -> None:
    done = {"reward": 0.6, "nas_done": True, "nas_state": "complete", "nas_values": "[0.6]",
            "nas_record": json.dumps({"epochs": 3, "full_budget": True, "val_acc": 0.6})}
    out = outcome_from_result(done, error=False)
    assert out.state == "complete" and out.values == [0.6] and out.record.full_budget
    stopped = {"reward": 0.2, "nas_done": False, "nas_state": "running",
               "nas_record": json.dumps({"epochs": 1, "full_budget": False, "val_acc": 0.2})}
    out = outcome_from_result(stopped, error=False)
    assert out.state == "pruned" and out.record.stopped_by == "scheduler" and out.record.epochs == 1
    died = outcome_from_result(None, error=True)
    assert died.state == "fail" and died.record.interrupted


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.parametrize("scheduler", ["asha", "median", "none"])
def test_real_scheduler_complete_and_pruned_trials(tmp_path: Path, ray_local: None, scheduler: str) -> None:
    ray = {"cpus_per_trial": 1.0, "max_concurrent": 2, "scheduler": scheduler}
    if scheduler != "none":
        ray["grace_epochs"] = 1
    cfg = validate(tiny_dict(tmp_path, name=f"sched-{scheduler}", sampler={"kind": "random"},
                             train={"epochs": 3}, trial={"cache": False},
                             run={"n_trials": 6, "backend": "ray"}, ray=ray))
    summary = run_search(cfg)
    trials = optuna.load_study(study_name=cfg.name, storage=cfg.storage_url).trials
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    assert len(complete) + len(pruned) == 6 and summary.n_fail == 0, [t.user_attrs for t in trials]
    assert complete, "trials that trained all 3 epochs must be COMPLETE"
    for t in complete:
        assert t.user_attrs["full_budget"] is True and t.user_attrs["epochs"] == 3 and t.value is not None
    for t in pruned:
        assert t.user_attrs["full_budget"] is False and t.user_attrs["stopped_by"] == "scheduler"
        assert 1 <= t.user_attrs["epochs"] < 3
    if scheduler == "none":
        assert not pruned
    assert optuna.load_study(study_name=cfg.name, storage=cfg.storage_url).best_trial.state == TrialState.COMPLETE

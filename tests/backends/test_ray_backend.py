"""Ray Tune backend end to end on the session's local Ray (2 CPUs): a study started locally is continued on
Ray in the same Optuna storage, and fixed jobs run as Ray tasks."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from helpers.studies import tiny_dict
from optuna.trial import TrialState

from nas_harness.study.config import validate
from nas_harness.study.search import run_search

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_study_started_locally_continues_on_ray(tmp_path: Path, ray_local: None) -> None:
    d = tiny_dict(tmp_path, sampler={"kind": "random", "enqueue": ["base"]}, run={"n_trials": 1},
                  ray={"cpus_per_trial": 1.0, "max_concurrent": 2})
    run_search(validate(d))  # 1 trial locally
    d["run"].update(n_trials=3, backend="ray")
    cfg = validate(d)
    summary = run_search(cfg)  # 2 more on Ray, same storage
    study = optuna.load_study(study_name=cfg.name, storage=cfg.storage_url)
    trials = study.trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3, [t.user_attrs for t in trials]
    assert [t.user_attrs["backend"] for t in trials] == ["local", "ray", "ray"]
    for t in trials[1:]:
        ua = t.user_attrs
        assert ua["full_budget"] is True and ua["epochs"] == 1 and 0 <= ua["val_acc"] <= 1
        assert t.value == pytest.approx(ua["val_acc"] * (ua["macs"] / 10e6) ** -0.07)
        assert set(t.params) >= {"s1_kernel", "s7_width"}
    assert summary.n_complete == 3
    assert (cfg.study_dir / "ray").is_dir()  # Tune's own results live under results/<study>/ray


def test_run_jobs_on_ray_reports_failures(tmp_path: Path, ray_local: None) -> None:
    from nas_harness.backends import Job, RayConfig, run_jobs
    from nas_harness.data import ProxyConfig
    from nas_harness.trial import TrialSpec

    cfg = validate(tiny_dict(tmp_path))
    base = cfg.search_space().base
    ok = Job("ok", TrialSpec(base, cfg.proxy_config(), cfg.train_config(), seed=0, stem_stride=1))
    # a job whose data folder is missing fails alone; the runner and the other job go on
    missing = ProxyConfig(dataset="folder", root=str(tmp_path / "no-such-folder"), resolution=16)
    broken = Job("broken", TrialSpec(base, missing, cfg.train_config(), seed=0, stem_stride=1))
    seen = []
    results = run_jobs([ok, broken], backend="ray", resources=RayConfig(max_concurrent=2),
                       on_result=lambda r: seen.append(r.key))
    assert [r.key for r in results] == ["ok", "broken"] and sorted(seen) == ["broken", "ok"]
    assert results[0].ok and 0 <= results[0].record.val_acc <= 1
    assert not results[1].ok and results[1].error.startswith("DataError")

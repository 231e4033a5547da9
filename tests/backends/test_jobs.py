"""The fixed-job API (used by ablations) on the local backend: order, callbacks, failures, cache."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.studies import tiny_dict

from nas_harness.backends import Job, run_jobs
from nas_harness.data import ProxyConfig
from nas_harness.errors import ConfigError
from nas_harness.study.config import validate
from nas_harness.trial import TrialSpec


@pytest.mark.slow
def test_local_jobs_order_failures_and_cache(tmp_path: Path) -> None:
    cfg = validate(tiny_dict(tmp_path))
    base = cfg.search_space().base
    spec = TrialSpec(base, cfg.proxy_config(), cfg.train_config(), seed=0, stem_stride=1, evaluate_test=True)
    missing = ProxyConfig(dataset="folder", root=str(tmp_path / "nope"), resolution=16)
    jobs = [Job("a", spec), Job("bad", TrialSpec(base, missing, cfg.train_config())), Job("a-again", spec)]
    seen = []
    res = run_jobs(jobs, cache_dir=tmp_path / "cache", on_result=lambda r: seen.append(r.key))
    assert [r.key for r in res] == seen == ["a", "bad", "a-again"]
    assert res[0].ok and not res[0].record.cached and 0 <= res[0].record.test_acc <= 1
    assert not res[1].ok and res[1].error.startswith("DataError")
    assert res[2].ok and res[2].record.cached is True
    assert res[2].record.val_acc == res[0].record.val_acc
    with pytest.raises(ConfigError, match="duplicate key"):
        run_jobs([Job("x", spec), Job("x", spec)])
    with pytest.raises(ConfigError, match="backend"):
        run_jobs([Job("x", spec)], backend="slurm")


@pytest.mark.slow
def test_jobs_in_two_worker_processes_give_the_same_records(tmp_path: Path) -> None:
    cfg = validate(tiny_dict(tmp_path))
    space = cfg.search_space()
    archs = [space.base, space.sample(1), space.sample(2)]
    missing = ProxyConfig(dataset="folder", root=str(tmp_path / "nope"), resolution=16)
    jobs = [Job(f"j{i}", TrialSpec(a, cfg.proxy_config(), cfg.train_config(), seed=i, stem_stride=1))
            for i, a in enumerate(archs)] + [Job("bad", TrialSpec(archs[0], missing, cfg.train_config()))]
    one = run_jobs(jobs, workers=1)
    seen: list[str] = []
    two = run_jobs(jobs, workers=2, on_result=lambda r: seen.append(r.key))  # results reach this process
    assert sorted(seen) == sorted(j.key for j in jobs) and [r.key for r in two] == [j.key for j in jobs]
    assert [r.ok for r in two] == [True, True, True, False] and two[3].error.startswith("DataError")
    assert [r.record.val_acc for r in one[:3]] == [r.record.val_acc for r in two[:3]]  # same seed, same numbers
    assert {r.record.threads for r in two[:3]} == {1}

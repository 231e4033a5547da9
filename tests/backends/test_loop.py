"""The one trial loop and the backend shape: a backend is one registered class; every backend's trials go
through TrialLoop (begin / evaluate / finish); a dead worker's outcome fails the trial and queues its arch
again; max_failures stops the loop; unknown study attributes are refused."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
import pytest
from helpers.studies import tiny_dict

from nas_harness.backends import (
    Backend,
    JobResult,
    RunResult,
    StudyRun,
    TrialLoop,
    backend_names,
    get_backend,
    register_backend,
    run_jobs,
)
from nas_harness.errors import ConfigError
from nas_harness.records import (
    INTERRUPTED,
    Heartbeat,
    Outcome,
    StorageLock,
    TrialRecord,
    TrialSlots,
    check_study_attrs,
    open_storage,
    set_study_attrs,
)
from nas_harness.study.config import validate
from nas_harness.study.search import build_task, open_study


@register_backend
class Inline(Backend):
    """A whole backend in a few lines: the loop in this process, jobs one after another."""

    name = "inline-test"

    def run_study(self, run: StudyRun) -> RunResult:
        slots = run.slots_for(run.study)
        try:
            res = TrialLoop(run.study, run.task, slots, max_failures=run.max_failures, log=run.log).run()
        finally:
            slots.heartbeat.close()
        return RunResult(ran=res.ran, failed=res.failed, stopped_by_failures=res.stopped_by_failures)

    def run_jobs(self, jobs: Sequence[Any], **kw: Any) -> list[JobResult]:
        from nas_harness.backends.jobs import run_one

        return [run_one(j, None) for j in jobs]


def _open(tmp_path: Path, n: int = 2, **kw: Any) -> tuple[Any, Any, Any]:
    cfg = validate(tiny_dict(tmp_path, run={"n_trials": n}, sampler={"kind": "random", "enqueue": ["base"]}, **kw))
    storage = open_storage(cfg.storage_url)
    cfg.study_dir.mkdir(parents=True, exist_ok=True)
    study, threads = open_study(cfg, storage, optuna.samplers.RandomSampler(seed=0))
    task = build_task(cfg, threads)

    def slots_for(s: Any) -> TrialSlots:
        return TrialSlots(s, n, StorageLock(cfg.storage_url), Heartbeat(s._storage, 10), task.params_of_arch)

    return study, task, slots_for


def test_a_registered_backend_runs_a_study_through_the_one_loop(tmp_path: Path) -> None:
    assert {"local", "ray", "inline-test"} <= set(backend_names())
    study, task, slots_for = _open(tmp_path)
    lines: list[str] = []
    res = get_backend("inline-test").run_study(StudyRun(study, task, slots_for, log=lines.append))
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert res.ran == 2 and len(done) == 2 and all(0 <= t.user_attrs["val_acc"] <= 1 for t in done)
    assert all(t.user_attrs["arch"] == str(task.space.arch_from_params(t.params)) for t in done)
    with pytest.raises(ConfigError, match=r"^backend: 'slurm'; allowed values: .*'local'.*'ray'"):
        get_backend("slurm")
    with pytest.raises(ConfigError, match="backend"):
        run_jobs([], backend="slurm")


def test_finish_requeues_a_dead_workers_trial_and_counts_failures(tmp_path: Path) -> None:
    study, task, slots_for = _open(tmp_path, n=3)
    slots = slots_for(study)
    lines: list[str] = []
    loop = TrialLoop(study, task, slots, max_failures=1, log=lines.append)
    try:
        trial = slots.acquire()
        arch, failed = loop.begin(trial)
        assert failed is None and study._storage.get_trial(trial._trial_id).user_attrs["arch"] == str(arch)
        dead = Outcome("fail", None, TrialRecord(arch=str(arch), fail_reason=f"{INTERRUPTED}: worker died"))
        assert loop.finish(trial, dead) is True  # not the arch's fault: failed, queued again, not counted
        stored = study._storage.get_trial(trial._trial_id)
        assert stored.state == optuna.trial.TrialState.FAIL and loop.result.failed == 0
        queued = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.WAITING]
        assert len(queued) == 1 and queued[0].system_attrs["fixed_params"] == stored.params
        trial = slots.acquire()  # the queued retry comes first
        assert trial.number == queued[0].number
        arch, _ = loop.begin(trial)
        broken = Outcome("fail", None, TrialRecord(arch=str(arch), fail_reason="TrialError: NaN loss"))
        assert loop.finish(trial, broken) is False  # max_failures = 1 reached: stop starting trials
        assert loop.result.failed == 1 and loop.result.stopped_by_failures
        assert any("run.max_failures = 1" in line for line in lines)
    finally:
        slots.heartbeat.close()


def test_study_attributes_are_declared_and_typed(tmp_path: Path) -> None:
    study, _, _ = _open(tmp_path)
    with pytest.raises(ValueError, match="not declared"):
        set_study_attrs(study, colour="blue")
    with pytest.raises(ValueError, match="metric_names"):
        set_study_attrs(study, metric_names="val_acc")
    check_study_attrs(study)  # what open_study wrote passes
    study.set_user_attr("objective", 3)  # tampered outside nas-harness
    with pytest.raises(ConfigError, match=r"^storage .*: study 'tiny'.*: stored objective = 3 is not text"):
        check_study_attrs(study)

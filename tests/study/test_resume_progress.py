"""Resume bookkeeping on a real SQLite storage (no training): RUNNING trials failed and retried once;
and the progress bar's summary."""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.trial import TrialState

from nas_harness.study.progress import StudyProgress
from nas_harness.study.search import best_trials, open_storage, recover_interrupted


def test_running_trials_failed_and_retried_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sub' / 'study.db'}"
    study = optuna.create_study(storage=open_storage(url), study_name="s", direction="maximize")
    done = study.ask()
    done.suggest_categorical("s1_kernel", [3, 5])
    study.tell(done, 0.5)
    crashed = study.ask({"s1_kernel": optuna.distributions.CategoricalDistribution([3, 5])})
    crashed.set_user_attr("reference", "base")
    crashed_params = dict(crashed.params)
    # a new process opens the same file (as after SIGKILL)
    study2 = optuna.load_study(study_name="s", storage=open_storage(url))
    assert recover_interrupted(study2) == [crashed.number]
    trials = study2.get_trials()
    assert trials[0].state == TrialState.COMPLETE
    assert trials[1].state == TrialState.FAIL
    assert trials[1].user_attrs["fail_reason"].startswith("interrupted")
    assert trials[2].state == TrialState.WAITING
    assert trials[2].system_attrs["fixed_params"] == crashed_params
    assert trials[2].user_attrs == {"retry_of": 1, "reference": "base"}
    assert recover_interrupted(study2) == []  # retried once only
    assert len(study2.get_trials()) == 3


def test_progress_summary_counts() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    for acc, macs in ((0.5, 10), (0.6, 20), (0.4, 30)):
        t = study.ask()
        study.tell(t, [acc, macs])
    bar = StudyProgress(3, 0, ["val_acc", "macs"], enabled=False)
    for t in study.trials:
        bar.update(study, t)
    assert bar.counts["complete"] == 3
    assert bar.summary(study).startswith("pareto=2")
    assert len(best_trials(study)) == 2
    single = optuna.create_study(direction="maximize")
    bar1 = StudyProgress(1, 0, ["reward"], enabled=True)
    assert bar1.summary(single) == "best=n/a"
    single.tell(single.ask(), 0.25)
    bar1.update(single, single.trials[0])
    assert bar1.summary(single) == "best reward=0.2500"
    bar1.close()


def test_heartbeat_stale_trial_failed_and_requeued(tmp_path: Path) -> None:
    import time

    url = f"sqlite:///{tmp_path / 'hb.db'}"
    storage = open_storage(url, heartbeat_s=1)
    study = optuna.create_study(storage=storage, study_name="hb", direction="maximize")
    t = study.ask({"s1_kernel": optuna.distributions.CategoricalDistribution([3, 5])})
    storage.record_heartbeat(t._trial_id)  # a worker that then dies
    time.sleep(4.5)  # > grace period (3 x 1 s), with margin for whole-second timestamps
    optuna.storages.fail_stale_trials(study)
    trials = study.get_trials()
    assert trials[0].state == TrialState.FAIL
    assert trials[1].state == TrialState.WAITING and trials[1].user_attrs["retry_of"] == 0
    assert trials[1].user_attrs["retry_reason"].startswith("interrupted: heartbeat")

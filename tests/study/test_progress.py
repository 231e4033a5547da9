"""The progress bar's summary (best value or Pareto size, pruned/failed/rejected counts)."""

from __future__ import annotations

import optuna

from nas_harness.study.progress import StudyProgress
from nas_harness.study.search import best_trials


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

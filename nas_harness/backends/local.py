"""Local backend: trials one after another in this process, per-epoch pruning, any number of such
processes on one study (each takes its trials through :class:`~nas_harness.records.TrialSlots`).

Each finished trial is committed to the study's storage before the next one starts, so killing the process
loses at most the trial in flight; that trial is failed with a reason and its arch queued again, by this
process on Ctrl-C, or by the next worker that looks (immediately on the same machine).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nas_harness.backends._task import StudyTask, TrialStopped, reason
from nas_harness.errors import raise_if_interrupted
from nas_harness.records import INTERRUPTED, Outcome, TrialRecord, TrialSlots, mark_running, tell


@dataclass
class LoopResult:
    """What one worker did: trials it ran and how they ended."""

    ran: int = 0
    failed: int = 0
    discarded: int = 0
    stopped_by_failures: bool = False


def evaluate_trial(trial: Any, task: StudyTask) -> Outcome:
    """Suggest the trial's arch (fixed parameters for queued trials), record it, train it with pruning."""
    try:
        arch = task.space.suggest(trial)
    except Exception as exc:  # e.g. queued parameters outside the space
        return Outcome("fail", None, TrialRecord(fail_reason=f"cannot build the arch: {reason(exc)}"))
    mark_running(trial.study, trial._trial_id, TrialRecord(arch=str(arch)))  # a killed trial says what it was
    single = task.objective.kind != "multi"

    def on_epoch(value: float, epoch: int, live: TrialRecord) -> None:
        if single:
            trial.report(value, epoch)
            if trial.should_prune():
                raise TrialStopped("pruner")

    return task.evaluate(arch, on_epoch)


SLOW_WARNING = "warning: this trial took"


class SlowTrials:
    """Says once when trials run far slower than this study's own earlier ones (another job competing for the
    cores), naming the load average.  The reference is the median wall time of the study's trials evaluated
    (not cached) before this run; without such trials, the first three of this run."""

    FACTOR = 3.0

    def __init__(self, study: Any) -> None:
        from optuna.trial import TrialState

        times = [t.user_attrs.get("wall_time_s") for t in study.get_trials(deepcopy=False, states=(
            TrialState.COMPLETE,)) if not t.user_attrs.get("cached") and not t.user_attrs.get("rejected")]
        self.reference: list[float] = sorted(float(x) for x in times if isinstance(x, (int, float)) and x > 0)
        self.from_study = len(self.reference) >= 3
        self.said = False

    def check(self, record: TrialRecord, log: Callable[[str], None]) -> None:
        t = record.wall_time_s
        if self.said or record.cached or record.rejected or not t or t <= 0:
            return
        if not self.from_study and len(self.reference) < 3:
            self.reference.append(float(t))
            self.reference.sort()
            return
        median = self.reference[len(self.reference) // 2]
        if t > self.FACTOR * median:
            import os

            from nas_harness.train.trainer import usable_cores

            load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
            self.said = True
            log(f"{SLOW_WARNING} {t:.1f} s, {t / median:.1f}x the study's typical {median:.1f} s; the load "
                f"average is {load:.1f} on {usable_cores()} core(s): other work is competing for the cores (the "
                "numbers stay the same, only slower)")


def run_local(study: Any, task: StudyTask, slots: TrialSlots, *, deadline: float | None = None,
              max_failures: int = 0, progress: Any = None, log: Callable[[str], None] = print,
              on_stored: Callable[[Any], None] | None = None) -> LoopResult:
    """Run trials until the study has its trials (all workers together), the deadline passes, or this worker
    saw ``max_failures`` failed trials (0 = no limit).  KeyboardInterrupt propagates after the trial in
    flight is failed as interrupted and its arch queued again.  ``on_stored(frozen_trial)`` is called after each
    trial this worker stored (experiment trackers)."""
    out = LoopResult()
    slow = SlowTrials(study)
    try:
        while deadline is None or time.time() < deadline:
            raise_if_interrupted()
            trial = slots.acquire(deadline)
            if trial is None:
                break
            tid = trial._trial_id
            outcome = evaluate_trial(trial, task)
            raise_if_interrupted()  # a Ctrl-C Python swallowed during the trial: the trial is failed, not told
            told = tell(study, tid, outcome)
            slots.release(tid)
            out.ran += 1
            frozen = study._storage.get_trial(tid)
            if told and on_stored is not None:
                on_stored(frozen)
            if not told:
                out.discarded += 1
                log(f"trial {trial.number}: another worker took this one for dead and failed it meanwhile; this "
                    "result is discarded (its arch was queued again and is served from the trial cache)")
            elif outcome.state == "fail":
                out.failed += 1
                log(f"trial {trial.number} failed: {outcome.record.fail_reason}")
            else:
                slow.check(outcome.record, log)
            if progress is not None:
                progress.update(study, frozen)
            if max_failures and out.failed >= max_failures:
                out.stopped_by_failures = True
                log(f"stopping: {out.failed} trials failed in this run (run.max_failures = {max_failures}); see "
                    "their fail_reason in trials.csv")
                break
    except KeyboardInterrupt:  # wherever it came: the trial in flight is failed as interrupted and queued again
        slots.abandon(f"{INTERRUPTED}: stopped by the user (Ctrl-C)")
        raise
    return out

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
from nas_harness.records import INTERRUPTED, Outcome, TrialRecord, TrialSlots, fail_and_requeue, tell


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
    trial.set_user_attr("arch", str(arch))  # a trial killed mid-training still says what it was
    single = task.objective.kind != "multi"

    def on_epoch(value: float, epoch: int, live: TrialRecord) -> None:
        if single:
            trial.report(value, epoch)
            if trial.should_prune():
                raise TrialStopped("pruner")

    return task.evaluate(arch, on_epoch)


def run_local(study: Any, task: StudyTask, slots: TrialSlots, *, deadline: float | None = None,
              max_failures: int = 0, progress: Any = None, log: Callable[[str], None] = print,
              on_stored: Callable[[Any], None] | None = None) -> LoopResult:
    """Run trials until the study has its trials (all workers together), the deadline passes, or this worker
    saw ``max_failures`` failed trials (0 = no limit).  KeyboardInterrupt propagates after the trial in
    flight is failed as interrupted and its arch queued again.  ``on_stored(frozen_trial)`` is called after each
    trial this worker stored (experiment trackers)."""
    out = LoopResult()
    while deadline is None or time.time() < deadline:
        trial = slots.acquire(deadline)
        if trial is None:
            break
        tid = trial._trial_id
        try:
            outcome = evaluate_trial(trial, task)
        except KeyboardInterrupt:
            frozen = study._storage.get_trial(tid)
            fail_and_requeue(study, frozen, f"{INTERRUPTED}: stopped by the user (Ctrl-C)", task.params_of_arch)
            slots.release(tid)
            raise
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
        if progress is not None:
            progress.update(study, frozen)
        if max_failures and out.failed >= max_failures:
            out.stopped_by_failures = True
            log(f"stopping: {out.failed} trials failed in this run (run.max_failures = {max_failures}); see "
                "their fail_reason in trials.csv")
            break
    return out

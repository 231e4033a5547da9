"""The trial loop: take a slot, propose the candidate, mark it running, evaluate it, tell the outcome, release.

One :class:`TrialLoop` serves every way a study's trials run: :meth:`TrialLoop.run` drives it in this process
(each local worker process runs one), and the Ray searcher calls the same :meth:`~TrialLoop.begin` and
:meth:`~TrialLoop.finish` from Tune's callbacks while Ray workers evaluate.  What a trial *is* (an arch of the
search space, or a compound-scaling triple mapped to an arch) is the task's business
(:meth:`nas_harness.backends.StudyTask.propose` / ``evaluate``); what happens to its outcome (stored through
:func:`nas_harness.records.tell`, a dead worker's trial failed and queued again, failures counted against
``run.max_failures``, the slow-trial warning, progress and trackers) is written here once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nas_harness.backends._task import reason
from nas_harness.errors import raise_if_interrupted
from nas_harness.records import INTERRUPTED, Outcome, TrialRecord, TrialSlots, fail_and_requeue, mark_running, tell

__all__ = ["SLOW_WARNING", "LoopResult", "SlowTrials", "TrialLoop"]


@dataclass
class LoopResult:
    """What one loop did: trials it ran and how they ended."""

    ran: int = 0
    failed: int = 0
    discarded: int = 0
    stopped_by_failures: bool = False


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


class TrialLoop:
    """One worker's trial loop on ``study``.

    ``task`` proposes and evaluates candidates (:class:`~nas_harness.backends.StudyTask` or a subclass);
    ``slots`` hands out the trials (all workers together finish exactly the study's ``n_trials``);
    ``max_failures`` (> 0): the loop stops after that many failed trials; ``progress.update(study, frozen)``
    and ``on_stored(frozen)`` (experiment trackers) are called after each trial this loop stored.
    """

    def __init__(self, study: Any, task: Any, slots: TrialSlots, *, max_failures: int = 0, progress: Any = None,
                 log: Callable[[str], None] = print, on_stored: Callable[[Any], None] | None = None) -> None:
        self.study, self.task, self.slots = study, task, slots
        self.max_failures, self.progress, self.log, self.on_stored = max_failures, progress, log, on_stored
        self.result = LoopResult()
        self.slow = SlowTrials(study)

    # -- the steps (also called one by one by the Ray searcher) ------------------------------------------------
    def begin(self, trial: Any, candidate: Any = None) -> tuple[Any, Outcome | None]:
        """Propose ``trial``'s candidate (unless given) and store that it is running, so a killed trial says
        what it was.  Returns (candidate, None), or (None, a failed outcome) when no candidate can be built
        (e.g. queued parameters outside the space)."""
        if candidate is None:
            try:
                candidate = self.task.propose(trial)
            except Exception as exc:
                return None, Outcome("fail", None, TrialRecord(fail_reason=f"cannot build the arch: {reason(exc)}"))
        mark_running(self.study, trial._trial_id, TrialRecord(arch=str(self.task.arch_of(candidate))))
        return candidate, None

    def finish(self, trial: Any, outcome: Outcome) -> bool:
        """Store ``outcome`` for ``trial`` and release its slot; False when the loop should stop starting trials
        (``max_failures`` reached).  An outcome of a dead worker (``interrupted``) fails the trial and queues
        its arch again instead of counting as the trial's result."""
        tid = trial._trial_id
        out = self.result
        if outcome.state == "fail" and outcome.record.interrupted:
            frozen = self.study._storage.get_trial(tid)
            msg = fail_and_requeue(self.study, frozen, outcome.record.fail_reason or INTERRUPTED,
                                   getattr(self.task, "params_of_arch", None))
            self.slots.release(tid)
            if msg:
                self.log(msg)
            return True
        told = tell(self.study, tid, outcome)
        self.slots.release(tid)
        out.ran += 1
        frozen = self.study._storage.get_trial(tid)
        if not told:
            out.discarded += 1
            self.log(f"trial {trial.number}: another worker took this one for dead and failed it meanwhile; this "
                     "result is discarded (its arch was queued again and is served from the trial cache)")
        else:
            if self.on_stored is not None:
                self.on_stored(frozen)
            if outcome.state == "fail":
                out.failed += 1
                self.log(f"trial {trial.number} failed: {outcome.record.fail_reason}")
            else:
                self.slow.check(outcome.record, self.log)
        if self.progress is not None:
            self.progress.update(self.study, frozen)
        if self.max_failures and out.failed >= self.max_failures and not out.stopped_by_failures:
            out.stopped_by_failures = True
            self.log(f"stopping: {out.failed} trials failed in this run (run.max_failures = {self.max_failures}); "
                     "see their fail_reason in trials.csv")
        return not out.stopped_by_failures

    def abandon(self, why: str | None = None) -> None:
        """Fail every trial this loop holds and queue their archs again (Ctrl-C, SIGTERM, a stopped driver);
        the reason defaults to the signal noted: "interrupted: stopped by the user (Ctrl-C)" or "interrupted:
        stopped by SIGTERM"."""
        if why is None:
            from nas_harness.errors import interrupt_name

            name = interrupt_name()
            why = f"{INTERRUPTED}: stopped by " + ("the user (Ctrl-C)" if name == "Ctrl-C" else name)
        self.slots.abandon(why)

    # -- the loop in this process -----------------------------------------------------------------------------
    def run(self, deadline: float | None = None) -> LoopResult:
        """Run trials until the study has its trials (all workers together), the deadline passes, or
        ``max_failures`` trials failed in this loop.  KeyboardInterrupt propagates after the trial in flight is
        failed as interrupted and its arch queued again."""
        try:
            while deadline is None or time.time() < deadline:
                raise_if_interrupted()
                trial = self.slots.acquire(deadline)
                if trial is None:
                    break
                candidate, outcome = self.begin(trial)
                if outcome is None:
                    outcome = self.task.evaluate(candidate, self._on_epoch(trial))
                raise_if_interrupted()  # a Ctrl-C Python swallowed during the trial: failed, not told
                if not self.finish(trial, outcome):
                    break
        except KeyboardInterrupt:  # wherever it came: the trial in flight is failed as interrupted and queued again
            self.abandon()
            raise
        return self.result

    def _on_epoch(self, trial: Any) -> Callable[[float, int, TrialRecord], None] | None:
        """Per-epoch reports to Optuna's pruner (single-objective studies)."""
        if self.task.objective.kind == "multi":
            return None
        from nas_harness.backends._task import TrialStopped

        def on_epoch(value: float, epoch: int, live: TrialRecord) -> None:
            trial.report(value, epoch)
            if trial.should_prune():
                raise TrialStopped("pruner")

        return on_epoch

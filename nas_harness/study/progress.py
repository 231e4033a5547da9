"""Terminal progress for a running study: trials done / planned, best value (or Pareto size), ETA.

Both backends feed it finished Optuna trials; it reads the study itself for the best value, so the bar is
right after a resume too.  tqdm writes to stderr and falls back to plain lines when not on a terminal.
"""

from __future__ import annotations

import sys
from typing import Any


class StudyProgress:
    """A tqdm bar over the trials planned *in this run*; ``update(study)`` after each finished trial."""

    def __init__(self, planned: int, already_done: int, metric_names: list[str], enabled: bool = True) -> None:
        self.planned = planned
        self.metric_names = metric_names
        self.enabled = enabled
        self.counts = {"complete": 0, "pruned": 0, "fail": 0, "cached": 0}
        self._bar = None
        if enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=planned, desc="trials", unit="trial", file=sys.stderr, dynamic_ncols=True,
                             disable=False, leave=True,
                             postfix=f"{already_done} done before" if already_done else None)

    def update(self, study: Any, trial: Any | None = None) -> None:
        """Count one finished trial (``trial`` is its FrozenTrial) and refresh the postfix."""
        if trial is not None:
            state = trial.state.name.lower()
            if state in self.counts:
                self.counts[state] += 1
            if trial.user_attrs.get("cached"):
                self.counts["cached"] += 1
            if trial.user_attrs.get("rejected"):
                self.counts["rejected"] = self.counts.get("rejected", 0) + 1
        if self._bar is None:
            return
        self._bar.set_postfix_str(self.summary(study), refresh=False)
        self._bar.update(1)

    def summary(self, study: Any) -> str:
        """'best reward=0.71' / 'pareto=4' plus fail/pruned counts."""
        parts = []
        try:
            if len(study.directions) > 1:
                parts.append(f"pareto={len(study.best_trials)}")
            else:
                parts.append(f"best {self.metric_names[0]}={study.best_value:.4f}")
        except ValueError:  # no (feasible) completed trial yet
            parts.append("best=n/a")
        parts += [f"{k}={v}" for k, v in self.counts.items() if v and k != "complete"]
        return " ".join(parts)

    def write(self, msg: str) -> None:
        """Print a line above the bar (or plainly when there is no bar)."""
        if self._bar is not None:
            self._bar.write(msg, file=sys.stderr)
        else:
            print(msg, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


#: Study user attribute holding why the latest run stopped (read by ``nas-harness report``).
STOP_ATTR = "last_stop"


def stop_reason(*, finished: int, target: int, interrupted: bool = False, stopped_by_failures: bool = False,
                max_failures: int = 0, grid_exhausted: bool = False, grid_size: int = 0,
                timeout_s: float = 0.0, timed_out: bool = False, running_elsewhere: int = 0) -> str:
    """Why a run of ``search`` ended, in one line that says what to do next.

    ``finished``: complete + pruned trials of the study after the run, ``target``: the trials it should have
    (``run.n_trials``, or the grid's size if smaller).  The first cause that applies wins: Ctrl-C or SIGTERM
    (worded after the signal noted, :func:`nas_harness.errors.interrupt_name`), too many failed trials, the grid
    ran out, ``run.n_trials`` reached, ``run.timeout_s`` passed.
    """
    of = f"{finished} of {target} trials finished"
    again = "run the same command to continue"
    if interrupted:
        from nas_harness.errors import interrupt_name

        return f"stopped: interrupted ({interrupt_name()}) with {of}; {again}"
    if stopped_by_failures:
        return (f"stopped: run.max_failures = {max_failures} failed trials in this run, with {of}; see their "
                f"fail_reason in trials.csv, then {again}")
    done = f"{finished} trial{'' if finished == 1 else 's'} finished"
    if grid_exhausted:
        return f"stopped: grid exhausted: all {grid_size} archs of the space evaluated ({done})"
    if finished >= target:
        return f"stopped: run.n_trials = {target} reached ({done})"
    if timed_out:
        return f"stopped: run.timeout_s = {timeout_s:g} s reached with {of}; {again}"
    if running_elsewhere:
        return f"stopped: {of}; the other {running_elsewhere} are running in other workers"
    return f"stopped with {of}; {again}"


#: The [run] limits a run of ``search`` was asked for (file + flags), kept with its stop note: the study's stored
#: settings are those it was created with, and ``report`` shows these, the latest run's, beside them.
RUN_LIMITS = ("n_trials", "timeout_s", "max_failures", "backend")


def record_stop(study: Any, reason: str, run: dict[str, Any] | None = None) -> None:
    """Store ``reason`` (and when, and the ``run`` limits this run was asked for) as the study's
    :data:`STOP_ATTR`, overwriting the previous run's; a storage that refuses the write costs the note, never
    the run."""
    import contextlib
    from datetime import UTC, datetime

    from nas_harness.records import set_study_attrs

    note: dict[str, Any] = {"reason": reason, "at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}
    if run:
        note["run"] = dict(run)
    with contextlib.suppress(Exception):  # the trials are stored already; the note is a convenience
        set_study_attrs(study, **{STOP_ATTR: note})


def note_stop(study: Any, summary: Any, cfg: Any, target: int, grid_size: int, deadline: float | None) -> str:
    """Why a ``run_search`` call ended (its ``SearchSummary``, ``StudyConfig``, trial target, grid size and
    deadline), as :func:`stop_reason` words it; stored with the study (:func:`record_stop`) and returned."""
    import time

    from nas_harness.records import counts

    now = counts(study)
    reason = stop_reason(finished=now.finished, target=target, interrupted=summary.interrupted,
                         stopped_by_failures=summary.stopped_by_failures,
                         max_failures=cfg.run.max_failures or cfg.run.n_trials,
                         grid_exhausted=summary.grid_exhausted, grid_size=grid_size, timeout_s=cfg.run.timeout_s,
                         timed_out=deadline is not None and time.time() >= deadline, running_elsewhere=now.running)
    record_stop(study, reason, {k: getattr(cfg.run, k) for k in RUN_LIMITS})
    return reason

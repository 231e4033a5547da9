"""Local backend: a plain ``study.optimize`` loop in this process, with Optuna pruning per epoch.

Each finished trial is committed to the study's storage by Optuna before the next one starts, so killing
the process loses at most the trial in flight (left RUNNING; the search layer retries it on restart).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from nas_harness.backends._task import Outcome, StudyTask, TrialStopped


class _RecordedFailure(Exception):
    """Raised after a failed trial's attributes are written, so Optuna marks it FAIL."""


def write_attrs(trial: Any, attrs: dict[str, Any]) -> None:
    """Write user attributes (one storage call each; values must be JSON-serialisable)."""
    for key, value in attrs.items():
        trial.set_user_attr(key, value)


def write_constraints(storage: Any, trial_id: int, values: list[float] | None) -> None:
    """Store constraint values where Optuna's samplers and ``best_trial`` read them (before ``tell``)."""
    if values is not None:
        storage.set_trial_system_attr(trial_id, "constraints", [float(v) for v in values])


def optuna_objective(task: StudyTask, *, on_fail: Callable[[int, str], None] | None = None
                     ) -> Callable[[Any], list[float]]:
    """The define-by-run objective for ``study.optimize``: suggest an arch, evaluate it, record it."""
    import optuna

    single = task.objective.kind != "multi"

    def objective(trial: optuna.Trial) -> list[float]:
        arch = task.space.suggest(trial)
        trial.set_user_attr("arch", str(arch))  # a trial killed mid-training still says what it was

        def on_epoch(value: float, epoch: int, live: dict[str, Any]) -> None:
            if not single:
                return
            trial.report(value, epoch)
            if trial.should_prune():
                raise TrialStopped()

        try:
            out: Outcome = task.evaluate(arch, on_epoch)
        except KeyboardInterrupt:
            trial.set_user_attr("fail_reason", "interrupted: stopped by the user (Ctrl-C)")
            raise
        write_attrs(trial, out.attrs)
        write_constraints(trial.storage, trial._trial_id, out.constraints)
        if out.state == "pruned":
            raise optuna.TrialPruned(f"pruned after {out.attrs.get('epochs', 0):g} epochs")
        if out.state == "fail":
            if on_fail is not None:
                on_fail(trial.number, out.attrs.get("fail_reason", ""))
            raise _RecordedFailure(out.attrs.get("fail_reason", "failed"))
        assert out.values is not None
        return out.values

    return objective


def run_local(study: Any, task: StudyTask, n_trials: int, timeout: float | None = None,
              progress: Any = None) -> None:
    """Run up to ``n_trials`` trials of ``study`` in this process (stops early on ``timeout`` seconds).

    KeyboardInterrupt propagates after Optuna has recorded the interrupted trial as FAIL.
    """
    import optuna

    def on_fail(number: int, reason: str) -> None:
        msg = f"trial {number} failed: {reason}"
        if progress is not None and getattr(progress, "_bar", None) is not None:
            progress._bar.write(msg, file=sys.stderr)
        else:
            print(msg, file=sys.stderr)

    callbacks = []
    if progress is not None:
        callbacks.append(lambda st, tr: progress.update(st, tr))
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study.optimize(optuna_objective(task, on_fail=on_fail), n_trials=n_trials, timeout=timeout or None,
                   catch=(Exception,), callbacks=callbacks, gc_after_trial=False)

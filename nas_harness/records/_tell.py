"""The one place that turns a trial's outcome into stored Optuna state.

Every runner (local loop, Ray searcher, scaling search) calls :func:`tell` for a trial it created RUNNING;
it writes the record's attributes, the constraint values samplers read, and the final state, in that order,
so a trial is never COMPLETE without its record.  The ablation store adds finished runs with :func:`add`
(one transaction).  Both map an outcome to state, values and attributes the same way (:func:`_final`).
A trial that another worker already finished (it took this worker for dead) is left as it is: :func:`tell`
returns False and the caller says so.
"""

from __future__ import annotations

import math
from typing import Any

from nas_harness.records._record import Outcome, TrialRecord


def write_attrs(storage: Any, trial_id: int, attrs: dict[str, Any]) -> None:
    """Write user attributes of a RUNNING trial (one storage call each)."""
    for key, value in attrs.items():
        storage.set_trial_user_attr(trial_id, key, value)


def mark_running(study: Any, trial_id: int, record: TrialRecord) -> None:
    """Store what is known of a RUNNING trial before it ends (its arch; where it runs), so a trial killed
    mid-way still says what it was; :func:`tell` writes the whole record when it ends."""
    attrs = {k: v for k, v in record.to_attrs().items() if k not in ("full_budget", "cached") or v}
    write_attrs(study._storage, trial_id, attrs)


def _final(outcome: Outcome) -> tuple[Any, list[float] | None, dict[str, Any], list[float] | None]:
    """(Optuna state, values, user attributes, constraint values) of an outcome."""
    from optuna.trial import TrialState

    state = {"complete": TrialState.COMPLETE, "pruned": TrialState.PRUNED}.get(outcome.state, TrialState.FAIL)
    values = [float(v) for v in outcome.values] if state == TrialState.COMPLETE and outcome.values else None
    record = outcome.record
    if state == TrialState.COMPLETE and (values is None or not all(math.isfinite(v) for v in values)):
        state, values = TrialState.FAIL, None
        record = record.replace(fail_reason=f"non-finite objective value {outcome.values}")
    if state != TrialState.FAIL and record.fail_reason:
        record = record.replace(fail_reason=None)
    cons = [float(v) for v in outcome.constraints] if outcome.constraints is not None else None
    return state, values, record.to_attrs(), cons if state != TrialState.FAIL else None


def add(study: Any, outcome: Outcome) -> Any:
    """Store a finished trial that was never RUNNING (e.g. an ablation run) in one transaction; returns it."""
    import optuna

    state, values, attrs, cons = _final(outcome)
    trial = optuna.trial.create_trial(state=state, values=values, user_attrs=attrs,
                                      system_attrs={"constraints": cons} if cons is not None else None)
    study.add_trial(trial)
    return trial


def tell(study: Any, trial_id: int, outcome: Outcome) -> bool:
    """Store ``outcome`` as the final state of trial ``trial_id``; False if it was already finished."""
    import optuna

    storage = study._storage
    state, values, attrs, cons = _final(outcome)
    try:
        if storage.get_trial(trial_id).state.is_finished():
            return False
        write_attrs(storage, trial_id, attrs)
        if cons is not None:
            storage.set_trial_system_attr(trial_id, "constraints", cons)
        number = storage.get_trial_number_from_id(trial_id)
        study.tell(number, values, state=state)
    except optuna.exceptions.UpdateFinishedTrialError:
        return False
    except ValueError as exc:  # "Cannot tell a FAIL trial": finished by another worker in between
        if "Cannot tell" in str(exc):
            return False
        raise
    return True

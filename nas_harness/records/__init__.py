"""Trial records and the one path into storage.

- :class:`TrialRecord`: the user-attribute contract every trial is stored with (read by results/, plots,
  reports); :class:`Outcome`: how a trial ended.
- :func:`tell`: the only function that turns an outcome into stored Optuna state.
- :func:`open_storage`, :func:`redact`, :class:`StorageLock`: storages by URL, credentials kept out of every
  output, and a cross-process lock per storage.
- :class:`TrialSlots`, :class:`Heartbeat`: any number of workers on one study reach exactly ``n_trials``
  finished trials; a dead worker's trial is failed with a reason and its arch queued again.
"""

from nas_harness.records._lease import (
    DONE,
    MAX_RETRIES,
    Counts,
    Heartbeat,
    TrialSlots,
    WorkerId,
    counts,
    fail_and_requeue,
    given_params,
    recover_stale,
    stale_reason,
)
from nas_harness.records._record import INTERRUPTED, REJECTED_OVER_BUDGET, Outcome, TrialRecord, stored_problem
from nas_harness.records._storage import (
    StorageLock,
    check_reachable,
    check_writable,
    open_storage,
    redact,
    scrub,
    sqlalchemy_url,
)
from nas_harness.records._study import STUDY_ATTRS, check_study_attrs, set_study_attrs, storage_label
from nas_harness.records._tell import add, mark_running, tell, write_attrs

__all__ = [
    "DONE",
    "INTERRUPTED",
    "MAX_RETRIES",
    "REJECTED_OVER_BUDGET",
    "STUDY_ATTRS",
    "Counts",
    "Heartbeat",
    "Outcome",
    "StorageLock",
    "TrialRecord",
    "TrialSlots",
    "WorkerId",
    "add",
    "check_reachable",
    "check_study_attrs",
    "check_writable",
    "counts",
    "fail_and_requeue",
    "given_params",
    "mark_running",
    "open_storage",
    "recover_stale",
    "redact",
    "scrub",
    "set_study_attrs",
    "sqlalchemy_url",
    "stale_reason",
    "storage_label",
    "stored_problem",
    "tell",
    "write_attrs",
]

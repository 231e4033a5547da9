"""What a tracker logs for one trial: its stored record as flat params, metrics and per-epoch curves.

Built from what the study storage holds (an Optuna ``FrozenTrial`` of a search, or a stored job of ``confirm``,
``fidelity``, ``ablate``), after the result is stored, so a tracker never shows a result the storage lacks.
Accuracies come with their Wilson 95% intervals (``*_ci_low`` / ``*_ci_high``, from
:func:`nas_harness.results.stats.accuracy_interval`).  Every text value passes :func:`clean` first: no
``scheme://user:password@`` survives, nor the password of any URL the run was given.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nas_harness.errors import ConfigError
from nas_harness.records import TrialRecord, scrub

#: Longest text value logged (MLflow's param limit is 6000 characters).
MAX_TEXT = 6000
_CREDENTIAL = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)(?P<pw>[^@\s/]+)@")

# record fields logged as params (text) and as metrics (numbers)
_PARAMS = ("arch", "evaluator", "evaluator_id", "seed", "threads", "device", "cpu_kernels", "backend", "host",
           "ray_node", "gpu_ids", "epochs_planned", "macs_resolution", "full_budget", "cached", "reference",
           "retry_of", "retry_count", "stopped_by", "rejected", "fail_reason")
_METRICS = ("macs", "params", "val_acc", "val_acc_final", "val_loss", "val_n", "test_acc", "test_loss", "test_n",
            "reward", "epochs", "steps", "latency_ms", "wall_time_s", "train_time_s", "train_wall_s", "images_per_s",
            "peak_mem_bytes")


def clean(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` without credentials: any ``scheme://user:password@`` loses its password, and the password of
    every URL in ``secrets`` is replaced by ``***`` wherever it appears; cut at :data:`MAX_TEXT` characters."""
    out = _CREDENTIAL.sub(lambda m: f"{m['head']}***@", text)
    for url in secrets:
        out = scrub(out, url)
    return out[:MAX_TEXT]


@dataclass(frozen=True)
class TrialEntry:
    """One trial as a tracker logs it.

    ``key``: unique within the study and stable over runs and workers (the Optuna trial number), what makes a
    second log of the same trial a no-op; ``state``: 'complete', 'pruned' or 'fail'; ``curves``: metric name
    -> [(epoch, value)].
    """

    key: str
    name: str
    state: str
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)


def flat_params(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings as dotted keys, e.g. ``{"train": {"lr": 0.01}}`` -> ``{"train.lr": 0.01}`` (lists stay
    values; empty tables and None are left out)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flat_params(v, key + "."))
        elif v is not None:
            out[key] = v
    return out


def _number(v: Any) -> float | None:
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float)) and math.isfinite(float(v)):
        return float(v)
    return None


def entry(key: str, name: str, state: str, record: TrialRecord, *, values: Sequence[float] | None = None,
          value_names: Sequence[str] = (), curve: Mapping[int, float] | None = None,
          curve_name: str = "objective", extra: Mapping[str, Any] | None = None,
          secrets: Iterable[str] = ()) -> TrialEntry:
    """The :class:`TrialEntry` of a stored record (see the module docstring)."""
    from nas_harness.results.stats import accuracy_interval

    secrets = tuple(secrets)
    attrs = record.to_attrs()
    params: dict[str, str] = {"state": state}
    for k in _PARAMS:
        if attrs.get(k) is not None:
            params[k] = clean(str(attrs[k]), secrets)
    for lib, version in (record.versions or {}).items():
        params[f"version.{lib}"] = clean(str(version), secrets)
    for k, v in {**record.extra, **(extra or {})}.items():
        if v is not None and k not in params and k not in _METRICS and isinstance(v, (str, int, float, bool)):
            params[k] = clean(str(v), secrets)
    metrics: dict[str, float] = {}
    for k in _METRICS:
        v = _number(attrs.get(k))
        if v is not None:
            metrics[k] = v
    for split in ("val", "test"):
        acc, n = attrs.get(f"{split}_acc"), attrs.get(f"{split}_n")
        lo, hi = accuracy_interval(acc, n)
        if math.isfinite(lo) and math.isfinite(hi):
            metrics[f"{split}_acc_ci_low"], metrics[f"{split}_acc_ci_high"] = lo, hi
    for i, v in enumerate(values or ()):
        n = value_names[i] if i < len(value_names) else f"value_{i}"
        if _number(v) is not None:
            metrics[f"objective.{n}"] = float(v)
    curves = {curve_name: sorted((int(s), float(v)) for s, v in curve.items() if _number(v) is not None)} \
        if curve else {}
    return TrialEntry(key=key, name=clean(name, secrets), state=state, params=params, metrics=metrics,
                      curves={k: c for k, c in curves.items() if c})


def entry_of_trial(trial: Any, value_names: Sequence[str] = (), secrets: Iterable[str] = (),
                   where: str | None = None) -> TrialEntry | None:
    """The entry of a finished Optuna trial of a search, None for one that is not a result (still running,
    or failed because its worker died: its retry is the result).  A stored value of the wrong type or range
    (:func:`nas_harness.records.stored_problem`) is a ConfigError naming ``where`` (the study), the trial and
    the key."""
    from optuna.trial import TrialState

    state = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "fail"}.get(trial.state)
    from nas_harness.records import stored_problem

    problem = stored_problem(trial.user_attrs)
    if problem is not None:  # a tampered value is one line (the tracker is dropped), never logged as a metric
        key, value, allowed = problem
        text = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        raise ConfigError(f"{where or 'study'}, trial {trial.number}: stored {key} = {text} is not {allowed} "
                          "(changed outside nas-harness?); not logged")
    record = TrialRecord.from_attrs(trial.user_attrs)
    if state is None or record.interrupted:
        return None
    return entry(str(trial.number), f"trial {trial.number}", state, record, values=trial.values,
                 value_names=value_names, curve=dict(trial.intermediate_values),
                 curve_name=f"per_epoch.{value_names[0] if value_names else 'objective'}",
                 extra={"trial": trial.number}, secrets=secrets)


def entry_of_job(run: Any, secrets: Iterable[str] = ()) -> TrialEntry:
    """The entry of a stored job of ``confirm``, ``fidelity`` or ``ablate`` (a
    :class:`~nas_harness.evaluation.store.StoredRun`: ``group``, ``seed``, ``state`` 'ok'/'failed', ``metrics``
    = its stored attributes).  Its key is the job (``group/seed<N>``, plus ``/failed`` for a failed run), so a
    job re-run with ``--retry-failed`` gets a second child only when the retry succeeds."""
    ok = run.state == "ok"
    key = f"{run.group}/seed{run.seed}" + ("" if ok else "/failed")
    label = run.metrics.get("label") if isinstance(run.metrics.get("label"), str) else run.group
    return entry(key, f"{label} seed {run.seed}", "complete" if ok else "fail",
                 TrialRecord.from_attrs(run.metrics), extra={"group": run.group}, secrets=secrets)

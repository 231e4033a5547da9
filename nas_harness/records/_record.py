"""The trial record: what every trial of every runner stores, declared once.

A study, an ablation store and a scaling study are Optuna studies; each trial's measurements live in its
*user attributes* under the keys of :class:`TrialRecord` (the contract results/, reports and plots read).
Runners build a :class:`TrialRecord` and hand it to :func:`nas_harness.records.tell` inside an
:class:`Outcome`; nothing else writes these attributes.  Reading is tolerant: a missing or malformed
attribute (an old study, a hand-edited database) becomes ``None``, never an exception.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

State = Literal["complete", "pruned", "fail"]

# Why a trial stopped short of its budget or did not train (``stopped_by`` / ``rejected``).
STOPPED_BY = ("pruner", "scheduler")
REJECTED_OVER_BUDGET = "over_budget"
# Prefix of the fail_reason of a trial whose worker stopped (crash, kill, Ctrl-C, lost node): such trials are
# retried with the arch they were given.
INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class TrialRecord:
    """One trial's measurements and provenance (Optuna user attributes; ``None`` = not measured).

    Units: MACs and params are counts of the *deployed* network (3-channel input at ``macs_resolution`` px,
    ``macs_num_classes`` outputs); accuracies are fractions in [0, 1] over ``val_n`` / ``test_n`` images;
    times are seconds; ``epochs`` may be fractional (a step budget).
    """

    arch: str | None = None
    # cost
    macs: int | None = None
    params: int | None = None
    macs_resolution: int | None = None
    latency_ms: float | None = None
    latency_device: str | None = None  # fingerprint id of the device whose latency table predicted latency_ms
    # quality
    val_acc: float | None = None
    val_acc_final: float | None = None
    val_loss: float | None = None
    val_n: int | None = None
    test_acc: float | None = None
    test_loss: float | None = None
    test_n: int | None = None
    reward: float | None = None
    # budget
    epochs: float | None = None
    epochs_planned: float | None = None
    steps: int | None = None
    full_budget: bool = False
    stopped_by: str | None = None
    rejected: str | None = None
    # cost of the measurement
    wall_time_s: float | None = None
    train_time_s: float | None = None
    train_wall_s: float | None = None
    images_per_s: float | None = None
    peak_mem_bytes: int | None = None
    # provenance
    seed: int | None = None
    device: str | None = None
    host: str | None = None
    ray_node: str | None = None
    gpu_ids: str | None = None
    threads: int | None = None
    cpu_kernels: str | None = None
    versions: dict[str, str] | None = None
    backend: str | None = None
    evaluator: str | None = None  # the [evaluator] kind that produced val_acc ('train', 'supernet', 'table', ...)
    evaluator_id: str | None = None  # fingerprint of the evaluator's identity (settings, supernet weights, ...)
    cached: bool = False
    resumed_from_checkpoint: bool | None = None
    reference: str | None = None
    retry_of: int | None = None
    retry_count: int | None = None
    fail_reason: str | None = None
    # runner-specific keys (ablation variant, scaling alpha/beta/gamma, ...), stored as top-level attributes
    extra: dict[str, Any] = field(default_factory=dict)

    def replace(self, **changes: Any) -> TrialRecord:
        """A copy with some declared fields changed; an unknown name is an error (runner-specific keys go
        through :meth:`with_extra`)."""
        unknown = sorted(k for k in changes if k not in _FIELDS or k == "extra")
        if unknown:
            raise TypeError(f"TrialRecord has no field {unknown[0]!r}; runner-specific keys go through with_extra()")
        return dataclasses.replace(self, **changes)

    def with_extra(self, **keys: Any) -> TrialRecord:
        """A copy with runner-specific keys (an ablation's variant, a scaling triple, a job's label), stored as
        top-level attributes beside the declared fields; a declared field's name is refused here."""
        clash = sorted(k for k in keys if k in _FIELDS)
        if clash:
            raise TypeError(f"{clash[0]!r} is a TrialRecord field: set it with replace()")
        return dataclasses.replace(self, extra={**self.extra, **keys})

    def to_attrs(self) -> dict[str, Any]:
        """JSON-ready user attributes (``None`` values are left out; ``extra`` keys at top level)."""
        out: dict[str, Any] = {}
        for name in _FIELDS:
            value = getattr(self, name)
            if value is not None and name != "extra":
                out[name] = _jsonable(value)
        for key, value in self.extra.items():
            if key not in out and value is not None:
                out[key] = _jsonable(value)
        return out

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any]) -> TrialRecord:
        """The record stored in ``attrs``; malformed values become ``None`` (never raises)."""
        values: dict[str, Any] = {}
        for name, kind in _TYPES.items():
            if name in attrs:
                values[name] = _coerce(attrs[name], kind)
        values["full_budget"] = bool(values.get("full_budget") or False)
        values["cached"] = bool(values.get("cached") or False)
        extra = {k: v for k, v in attrs.items() if k not in _TYPES}
        return cls(**values, extra=extra)

    @property
    def interrupted(self) -> bool:
        return bool(self.fail_reason and self.fail_reason.startswith(INTERRUPTED))


_FIELDS = tuple(f.name for f in dataclasses.fields(TrialRecord))


def _kind(annotation: Any) -> str:
    args = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]
    base = typing.get_origin(args[0]) or args[0]
    return {float: "float", int: "int", bool: "bool", dict: "dict"}.get(base, "str")


_TYPES: dict[str, str] = {name: _kind(hint) for name, hint in typing.get_type_hints(TrialRecord).items()
                          if name != "extra"}


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _coerce(value: Any, kind: str) -> Any:
    try:
        if value is None:
            return None
        if kind == "float":
            if isinstance(value, bool):
                return None
            out = float(value)
            return out if math.isfinite(out) else None
        if kind == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                return None
            return int(value)
        if kind == "bool":
            return value if isinstance(value, bool) else None
        if kind == "dict":
            return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else None
        return value if isinstance(value, str) else None
    except (TypeError, ValueError, OverflowError):
        return None


#: Ranges of the stored values readers rank and plot: a value outside is not a measurement (a tampered or
#: damaged database), and is refused by :func:`stored_problem`.
_RANGES: dict[str, tuple[float, float]] = {
    **dict.fromkeys(("val_acc", "val_acc_final", "test_acc"), (0.0, 1.0)),
    **dict.fromkeys(("macs", "params", "peak_mem_bytes"), (0.0, 1e18)),
    **dict.fromkeys(("val_n", "test_n", "steps", "threads", "macs_resolution", "retry_of", "retry_count", "seed"),
                    (0.0, 1e12)),
    **dict.fromkeys(("epochs", "epochs_planned"), (0.0, 1e9)),
    **dict.fromkeys(("latency_ms", "wall_time_s", "train_time_s", "train_wall_s", "images_per_s"), (0.0, 1e15)),
    "reward": (-1e15, 1e15),
}


def stored_problem(attrs: Any) -> tuple[str, Any, str] | None:
    """The first stored trial attribute that is not what nas-harness writes: ``(key, value, what is allowed)``;
    None when every known key has its type (a number for a number, never a bool or text) and range."""
    if not isinstance(attrs, dict):
        return "user_attrs", attrs, "a table"
    for name, kind in _TYPES.items():
        if name not in attrs or attrs[name] is None:
            continue
        value = attrs[name]
        if kind in ("float", "int"):
            if isinstance(value, str) and kind == "float" and name not in _RANGES:
                try:  # a non-finite loss is stored as 'inf' / '-inf' (JSON has no infinity)
                    if not math.isfinite(float(value)):
                        continue
                except ValueError:
                    pass
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                return name, value, "a finite number"
            if kind == "int" and not float(value).is_integer():
                return name, value, "an integer"
            lo, hi = _RANGES.get(name, (-math.inf, math.inf))
            if not lo <= value <= hi:
                return name, value, f"a number in [{lo:g}, {hi:g}]"
        elif kind == "bool" and not isinstance(value, bool):
            return name, value, "true or false"
        elif kind == "dict" and not isinstance(value, dict):
            return name, value, "a table"
        elif kind == "str" and not isinstance(value, str):
            return name, value, "text"
    return None


@dataclass
class Outcome:
    """How one trial ended: ``state``, its objective ``values`` (complete only), the record and the
    constraint values (relative budget overshoot, feasible when <= 0) that samplers read."""

    state: State
    values: list[float] | None
    record: TrialRecord
    constraints: list[float] | None = None

    @property
    def attrs(self) -> dict[str, Any]:
        return self.record.to_attrs()

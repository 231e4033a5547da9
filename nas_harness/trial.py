"""The one trial function shared by every runner: local Optuna, Ray Tune, confirm, fidelity and the ablation jobs.

A trial = count the candidate's MACs/params analytically, evaluate it with the spec's evaluator (trained from
scratch by default; see :mod:`nas_harness.evaluators`) and return its :class:`~nas_harness.records.TrialRecord`.
Search backends only differ in *who calls* :func:`run_trial`; keeping one function guarantees that a study
continued on another backend measures exactly the same thing.

Results are cached by (arch string, data fingerprint, training recipe, seed, MAC-count settings, the evaluator's
identity unless it is the default): an identical candidate proposed twice (common with discrete spaces and TPE)
is not evaluated again.  The cache lives
in memory and, optionally, in a folder of small JSON files so that Ray workers and later runs share it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from nas_harness._config import Bool, ConfigModel, Int, read_file, write_output
from nas_harness.errors import ConfigError
from nas_harness.evaluators import TrialSpec, library_versions
from nas_harness.evaluators._train import train_cfg as _train_cfg
from nas_harness.records import TrialRecord

__all__ = ["ResultCache", "TrialSettings", "TrialSpec", "analytic_cost", "cache_key", "library_versions",
           "planned_epochs", "run_trial", "valid_entry"]


class TrialSettings(ConfigModel):
    """``[trial]``: how a candidate is counted and evaluated (the same for every trial of a study)."""

    def comparable(self, *, evaluate_test: bool = True) -> dict[str, Any]:
        """The settings that make two runs comparable (``cache`` never changes a number; ``evaluate_test=False``
        leaves out whether the test split is also measured, for stores whose runs choose it per command)."""
        drop = ("cache",) if evaluate_test else ("cache", "evaluate_test")
        return {k: v for k, v in self.to_dict().items() if k not in drop}

    stem_stride: Annotated[Literal[1, 2] | None, Field(
        description="stem stride of the trained proxy network (1 for 28-32 px); omit for the arch's own")] = None
    macs_resolution: Annotated[Int, Field(ge=8, le=4096, description="input size (px) at which MACs are counted")
                               ] = 224
    macs_num_classes: Annotated[Int | None, Field(ge=1, le=1_000_000, description=(
        "classifier size at which MACs/params are counted; omit for the data set's classes"))] = 1000
    evaluate_test: Annotated[Bool, Field(description="also evaluate each trial on the test split (test_acc)")] = False
    cache: Annotated[Bool, Field(description="reuse results of identical candidates (arch + data + recipe)")] = True


def analytic_cost(spec: TrialSpec) -> tuple[int, int]:
    """(MACs, params) of the candidate at the spec's MAC-count settings, without building or training it.

    Cheap (milliseconds), so budget checks can reject a candidate before any training.
    """
    return _cost(spec.arch, spec.macs_resolution, spec.macs_num_classes)


@functools.lru_cache(maxsize=4096)
def _cost(arch: Any, resolution: int, num_classes: int) -> tuple[int, int]:
    """(MACs, params) of an immutable arch, counted once per process (the budget check and the trial share it)."""
    from nas_harness.flops import count_macs, count_params

    macs = count_macs(arch, resolution, num_classes=num_classes, in_channels=3, stem_stride=None).total
    params = count_params(arch, num_classes=num_classes, in_channels=3)
    return int(macs), int(params)


def cache_key(spec: TrialSpec, data_fingerprint: str | None) -> str:
    """Stable hash of everything that determines the trial's outcome (the evaluator's identity included unless
    it is the default training, so existing caches keep their keys)."""
    payload: dict[str, Any] = {
        "arch": str(spec.arch),
        "data": data_fingerprint,
        "train": _train_cfg(spec).to_dict(),
        "seed": spec.seed,
        "stem_stride": spec.stem_stride,
        "macs": [spec.macs_resolution, spec.macs_num_classes],
        "test": spec.evaluate_test,
    }
    evaluator = spec.evaluator_or_default
    if evaluator.kind != "train":
        payload["evaluator"] = evaluator.identity()
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


class ResultCache:
    """Finished trial records keyed by :func:`cache_key`; optionally persisted as one JSON file per key.

    One file per key written via rename keeps concurrent writers (Ray workers, several processes) safe
    without locks.  A cache file travels with a results folder, so reading it trusts nothing: a file that is
    torn, unreadable, too large, not JSON, or whose entry does not validate (:func:`valid_entry`: every
    recorded field of its JSON type, a full-budget record of the same arch with ``val_acc`` in [0, 1] and its
    MACs) is a miss, and the trial is simply trained.  It is JSON, so nothing in it is ever executed.
    """

    def __init__(self, directory: str | Path | None = None) -> None:
        self.directory = Path(directory) if directory is not None else None
        self._mem: dict[str, TrialRecord] = {}

    def get(self, key: str, arch: str | None = None) -> TrialRecord | None:
        if key in self._mem:
            return self._mem[key]
        if self.directory is None:
            return None
        path = self.directory / f"{key}.json"
        try:
            value = json.loads(read_file(path, 1 << 20).decode("utf-8"), parse_constant=_no_constant)
        except (OSError, ValueError, RecursionError):  # ConfigError too: a FIFO or device in its place is a miss
            return None
        if not valid_entry(value, arch):
            return None
        record = TrialRecord.from_attrs(value)
        self._mem[key] = record
        return record

    def put(self, key: str, record: TrialRecord) -> None:
        self._mem[key] = record
        if self.directory is not None:
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
                with write_output(self.directory / f"{key}.json") as f:  # temp file + rename; 0666 less umask
                    json.dump(record.to_attrs(), f, sort_keys=True)
            except (OSError, ConfigError):  # a full or read-only disk, a FIFO there: loses an entry, never the trial
                pass

    def __len__(self) -> int:
        return len(self._mem)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} in a cache entry")


_INF = float("inf")
_JSON_TYPES: dict[str, Callable[[Any], bool]] = {
    "float": lambda v: type(v) in (int, float) and -_INF < v < _INF,  # finite (NaN compares False)
    "int": lambda v: type(v) is int,
    "bool": lambda v: type(v) is bool,
    "str": lambda v: type(v) is str,
    "dict": lambda v: type(v) is dict and all(type(k) is str and type(x) is str for k, x in v.items()),
}


def valid_entry(value: Any, arch: str | None = None) -> bool:
    """Whether a cache file's JSON is a usable record: every known field of its JSON type (``None`` allowed),
    a non-empty arch (``arch`` when given), ``full_budget`` true, ``val_acc`` in [0, 1], MACs > 0 (params > 0
    when recorded)."""
    from nas_harness.records._record import _TYPES

    if type(value) is not dict:
        return False
    for name, kind in _TYPES.items():
        if name in value and value[name] is not None and not _JSON_TYPES[kind](value[name]):
            return False
    acc, macs, params = value.get("val_acc"), value.get("macs"), value.get("params")
    return (type(value.get("arch")) is str and bool(value["arch"]) and (arch is None or value["arch"] == arch)
            and value.get("full_budget") is True and acc is not None and 0.0 <= acc <= 1.0
            and macs is not None and macs > 0 and (params is None or params > 0))


def planned_epochs(train_cfg: Any, n_train: int) -> float:
    """The budget in epochs (fractional for a step budget): :meth:`TrainConfig.planned_epochs`."""
    return float(train_cfg.planned_epochs(n_train))


def run_trial(
    spec: TrialSpec,
    report: Callable[[Any], None] | None = None,
    cache: ResultCache | None = None,
    checkpoint_dir: str | Path | None = None,
) -> TrialRecord:
    """Count and evaluate one candidate (trained from scratch unless ``spec.evaluator`` says otherwise); return
    its :class:`TrialRecord` with the evaluator's provenance (``evaluator``, ``evaluator_id``).

    ``report`` is called after every epoch with the trainer's ``EpochReport`` (or the evaluator's progress); it
    may raise (e.g. ``optuna.TrialPruned``), which propagates.  ``cache`` short-cuts a candidate evaluated
    before with the same key: the stored record is returned with ``cached=True`` and ``report`` is not called.
    Failures raise :class:`~nas_harness.errors.TrialError` subclasses; anything unexpected from model
    building (e.g. an arch the model code cannot realise) is wrapped in a ``TrialError`` too.
    ``checkpoint_dir``: evaluate with a per-epoch checkpoint ``<dir>/<cache key>.pt`` so a long run killed
    mid-way resumes where it stopped (used for ablation runs); the file is removed once the trial finished.
    """
    from nas_harness.data import load_proxy

    t0 = time.perf_counter()
    evaluator = spec.evaluator_or_default
    # cached per process by the data layer; an evaluator that never reads the data does not load it
    fingerprint = load_proxy(spec.data).fingerprint() if evaluator.uses_data else None
    key = cache_key(spec, fingerprint)
    if cache is not None:
        hit = cache.get(key, str(spec.arch))
        if hit is not None:
            return hit.replace(cached=True)

    macs, params = analytic_cost(spec)
    ck = Path(checkpoint_dir) / f"{key}.pt" if checkpoint_dir is not None else None
    resumed = ck is not None and ck.exists()
    record = evaluator.evaluate(spec, report, ck)
    if ck is not None:
        ck.unlink(missing_ok=True)
    record = record.replace(macs=macs, params=params, wall_time_s=time.perf_counter() - t0,
                            resumed_from_checkpoint=resumed if ck is not None else None,
                            evaluator=evaluator.kind, evaluator_id=evaluator.fingerprint)
    if cache is not None and record.full_budget:
        cache.put(key, record)
    return record

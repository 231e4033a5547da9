"""The one trial function shared by every runner: local Optuna, Ray Tune and the ablation jobs.

A trial = build the candidate network, count its MACs/params analytically, train it on the proxy data and
return its :class:`~nas_harness.records.TrialRecord`.  Search backends only differ in *who calls*
:func:`run_trial`; keeping one function guarantees that a study continued on another backend measures exactly
the same thing.

Results are cached by (arch string, data fingerprint, training recipe, seed, MAC-count settings): an
identical candidate proposed twice (common with discrete spaces and TPE) is not retrained.  The cache lives
in memory and, optionally, in a folder of small JSON files so that Ray workers and later runs share it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from nas_harness._config import Bool, ConfigModel, Int, read_file
from nas_harness.errors import TrialError
from nas_harness.records import TrialRecord

_VERSION_LIBS = ("nas-harness", "torch", "optuna", "ray", "numpy", "fvcore")


class TrialSettings(ConfigModel):
    """``[trial]``: how a candidate is counted and evaluated (the same for every trial of a study)."""

    stem_stride: Annotated[Literal[1, 2] | None, Field(
        description="stem stride of the trained proxy network (1 for 28-32 px); omit for the arch's own")] = None
    macs_resolution: Annotated[Int, Field(ge=8, le=4096, description="input size (px) at which MACs are counted")
                               ] = 224
    macs_num_classes: Annotated[Int | None, Field(ge=1, le=1_000_000, description=(
        "classifier size at which MACs/params are counted; omit for the data set's classes"))] = 1000
    evaluate_test: Annotated[Bool, Field(description="also evaluate each trial on the test split (test_acc)")] = False
    cache: Annotated[Bool, Field(description="reuse results of identical candidates (arch + data + recipe)")] = True


@dataclass(frozen=True)
class TrialSpec:
    """Everything that determines a trial's result (and therefore its cache key).

    ``stem_stride`` only affects the trained proxy network; MACs/params are those of the deployed network
    (3-channel input, the arch's own stem stride) at ``macs_resolution`` px and ``macs_num_classes``, so
    objectives compare candidates at the cost they would have in use, not on the proxy.
    """

    arch: Any  # nas_harness.arch.Arch
    data: Any  # nas_harness.data.ProxyConfig
    train: Any  # nas_harness.train.TrainConfig
    seed: int = 0
    stem_stride: int | None = None
    macs_resolution: int = 224
    macs_num_classes: int = 1000
    evaluate_test: bool = False


@functools.cache
def _library_versions() -> tuple[tuple[str, str], ...]:
    out = {"python": platform.python_version()}
    for lib in _VERSION_LIBS:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            mod = sys.modules.get(lib.replace("-", "_"))
            out[lib] = str(getattr(mod, "__version__", "unknown"))
    return tuple(out.items())


def library_versions() -> dict[str, str]:
    """Versions of the libraries that influence a result (recorded with every trial; computed once)."""
    return dict(_library_versions())


def analytic_cost(spec: TrialSpec) -> tuple[int, int]:
    """(MACs, params) of the candidate at the spec's MAC-count settings, without building or training it.

    Cheap (milliseconds), so budget checks can reject a candidate before any training.
    """
    from nas_harness.flops import count_macs, count_params

    macs = count_macs(spec.arch, spec.macs_resolution, num_classes=spec.macs_num_classes,
                      in_channels=3, stem_stride=None).total
    params = count_params(spec.arch, num_classes=spec.macs_num_classes, in_channels=3)
    return int(macs), int(params)


def _train_cfg(spec: TrialSpec) -> Any:
    return spec.train.replace(seed=spec.seed)


def cache_key(spec: TrialSpec, data_fingerprint: str) -> str:
    """Stable hash of everything that determines the trial's outcome."""
    payload = {
        "arch": str(spec.arch),
        "data": data_fingerprint,
        "train": _train_cfg(spec).to_dict(),
        "seed": spec.seed,
        "stem_stride": spec.stem_stride,
        "macs": [spec.macs_resolution, spec.macs_num_classes],
        "test": spec.evaluate_test,
    }
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
            tmp = None
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
                os.fchmod(fd, 0o644)  # mkstemp's 0600 would keep a shared cache from the other users
                with os.fdopen(fd, "w") as f:
                    json.dump(record.to_attrs(), f, sort_keys=True)
                os.replace(tmp, self.directory / f"{key}.json")
            except OSError:  # a full or read-only disk loses a cache entry, never the trial
                if tmp is not None:
                    Path(tmp).unlink(missing_ok=True)

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
    """The budget in epochs (fractional for a step budget), so stopped-early trials can be told apart."""
    if train_cfg.epochs is not None:
        return float(train_cfg.epochs)
    steps = int(train_cfg.steps or 0)
    return round(steps * int(train_cfg.batch_size) / max(1, n_train), 4)


def run_trial(
    spec: TrialSpec,
    report: Callable[[Any], None] | None = None,
    cache: ResultCache | None = None,
    checkpoint_dir: str | Path | None = None,
) -> TrialRecord:
    """Build, count, train (and optionally test) one candidate; return its :class:`TrialRecord`.

    ``report`` is called after every epoch with the trainer's ``EpochReport``; it may raise (e.g.
    ``optuna.TrialPruned``), which propagates.  ``cache`` short-cuts a candidate trained before with the
    same key: the stored record is returned with ``cached=True`` and ``report`` is not called.
    Failures raise :class:`~nas_harness.errors.TrialError` subclasses; anything unexpected from model
    building (e.g. an arch the model code cannot realise) is wrapped in a ``TrialError`` too.
    ``checkpoint_dir``: train with a per-epoch checkpoint ``<dir>/<cache key>.pt`` so a long run killed
    mid-way resumes where it stopped (used for ablation runs); the file is removed once the trial finished.
    """
    from nas_harness.data import load_proxy

    t0 = time.perf_counter()
    data = load_proxy(spec.data)  # cached per process by the data layer
    key = cache_key(spec, data.fingerprint())
    if cache is not None:
        hit = cache.get(key, str(spec.arch))
        if hit is not None:
            return hit.replace(cached=True)

    macs, params = analytic_cost(spec)
    ck = Path(checkpoint_dir) / f"{key}.pt" if checkpoint_dir is not None else None
    resumed = ck is not None and ck.exists()
    record = _train_and_measure(spec, data, report, ck)
    if ck is not None:
        ck.unlink(missing_ok=True)
    record = record.replace(macs=macs, params=params, wall_time_s=time.perf_counter() - t0,
                            resumed_from_checkpoint=resumed if ck is not None else None)
    if cache is not None and record.full_budget:
        cache.put(key, record)
    return record


def _train_and_measure(spec: TrialSpec, data: Any, report: Callable[[Any], None] | None,
                       checkpoint: Path | None = None) -> TrialRecord:
    from nas_harness.model import build_model
    from nas_harness.train import evaluate, train

    cfg = _train_cfg(spec)
    import torch

    torch.manual_seed(spec.seed)  # the initial weights depend on the seed only, not on earlier trials
    try:
        model = build_model(spec.arch, num_classes=data.num_classes, in_channels=data.in_channels,
                            stem_stride=spec.stem_stride)
    except (ValueError, RuntimeError) as exc:
        raise TrialError(f"cannot build model: {exc}") from exc
    result = train(model, data, cfg, on_epoch=report, checkpoint=checkpoint)
    record = TrialRecord(
        arch=str(spec.arch), val_acc=float(result.best_val_acc), val_acc_final=float(result.final_val_acc),
        val_loss=float(result.val_loss), val_n=len(data.val_y), epochs=float(result.epochs_run),
        epochs_planned=planned_epochs(cfg, len(data.train_y)), full_budget=True, steps=int(result.steps),
        train_time_s=float(result.train_time_s),
        train_wall_s=float(result.wall_time_s),  # trainer wall incl. evaluation (harness overhead = the rest)
        images_per_s=float(result.images_per_s), peak_mem_bytes=int(result.peak_mem_bytes or 0),
        device=str(result.device), threads=int(result.threads) if result.threads else None,
        cpu_kernels=result.cpu_kernels, seed=int(spec.seed), versions=library_versions(),
        cached=False, macs_resolution=int(spec.macs_resolution),
    )
    if spec.evaluate_test:
        test_acc, test_loss = evaluate(model, data.test_x, data.test_y, cfg)
        record = record.replace(test_acc=float(test_acc), test_loss=float(test_loss), test_n=len(data.test_y))
    del model
    return record

"""The evaluator seam: what "evaluate an architecture" means, chosen per study.

An :class:`Evaluator` turns a :class:`TrialSpec` (arch, data, recipe, seed, MAC-count settings) into a
:class:`~nas_harness.records.TrialRecord` holding at least ``val_acc`` with its split size ``val_n``, the budget
spent (``epochs``/``steps``) and ``full_budget``.  Training from scratch (:class:`TrainEvaluator`) is the
default; a weight-sharing supernet or a benchmark table/surrogate are other kinds.  Every runner (search on any
backend, confirm, fidelity, ablations) calls :func:`nas_harness.trial.run_trial`, which adds the analytic cost,
the cache and the evaluator's provenance (``evaluator``, ``evaluator_id``) around :meth:`Evaluator.evaluate`.

A study file chooses the evaluator in ``[evaluator] kind = "..."``; a kind's own options sit in a top-level table
named after it (``[supernet]``, ``[table]``, ...).  :meth:`Evaluator.identity` is part of what makes trials
comparable (stored with the study, in every cache key) except for ``train``, whose identity is the recipe that
is already stored: existing studies keep their fingerprints.

Adding a kind takes one class and one call (see ``docs/architecture.md``)::

    class Toy(Evaluator):
        kind = "toy"
        uses_data = False
        def evaluate(self, spec, report=None, checkpoint=None):
            return TrialRecord(arch=str(spec.arch), val_acc=score(spec.arch), val_n=1000, epochs=0.0,
                               full_budget=True, seed=spec.seed)

    register_evaluator("toy", lambda options, ctx: Toy())
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
import platform
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, ValidationError, model_validator

from nas_harness._config import ConfigModel, format_error, printable, restate
from nas_harness.errors import ConfigError
from nas_harness.records import TrialRecord

_VERSION_LIBS = ("nas-harness", "torch", "optuna", "ray", "numpy", "fvcore")


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


@dataclass(frozen=True)
class TrialSpec:
    """Everything that determines a trial's result (and therefore its cache key).

    ``stem_stride`` only affects the trained proxy network; MACs/params are those of the deployed network
    (3-channel input, the arch's own stem stride) at ``macs_resolution`` px and ``macs_num_classes``, so
    objectives compare candidates at the cost they would have in use, not on the proxy.  ``evaluator``: how
    the arch is evaluated (``None``: trained from scratch, :class:`TrainEvaluator`).
    """

    arch: Any  # nas_harness.arch.Arch
    data: Any  # nas_harness.data.ProxyConfig
    train: Any  # nas_harness.train.TrainConfig
    seed: int = 0
    stem_stride: int | None = None
    macs_resolution: int = 224
    macs_num_classes: int = 1000
    evaluate_test: bool = False
    evaluator: Evaluator | None = None

    @property
    def evaluator_or_default(self) -> Evaluator:
        return self.evaluator if self.evaluator is not None else TrainEvaluator()


@dataclass(frozen=True)
class EvalContext:
    """What a study gives its evaluator when it is made: the search space, proxy data, recipe (threads fixed),
    trial settings, the study's seed and its results folder (``None`` outside a study)."""

    space: Any  # nas_harness.space.SearchSpace
    data: Any  # ProxyConfig
    train: Any  # TrainConfig
    trial: Any  # nas_harness.trial.TrialSettings
    seed: int = 0
    study_dir: Path | None = None


class Evaluator(ABC):
    """How an architecture is scored.  Instances are small and picklable (they travel to Ray workers); heavy
    state (weights, tables) is loaded lazily in the process that evaluates."""

    #: The ``[evaluator] kind`` this class implements.
    kind: ClassVar[str] = ""
    #: Whether evaluating reads the study's proxy data (its fingerprint is then part of the cache key).
    uses_data: ClassVar[bool] = True
    #: How reports and figures qualify this evaluator's accuracies ("" for trained accuracies).
    accuracy_note: ClassVar[str] = ""

    def identity(self) -> dict[str, Any]:
        """JSON settings that determine this evaluator's numbers (part of a study's comparability record)."""
        return {"kind": self.kind}

    @property
    def fingerprint(self) -> str:
        """A short stable hash of :meth:`identity` (recorded with every trial as ``evaluator_id``)."""
        blob = json.dumps(self.identity(), sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def check(self, ctx: EvalContext) -> None:  # noqa: B027 - optional hook
        """Cheap validation against the study (its space, data, recipe) before anything is written: a
        :class:`~nas_harness.errors.ConfigError` line, so ``search --check`` and a refused run leave nothing
        behind.  The default checks nothing."""

    def prepare(self, ctx: EvalContext, log: Callable[[str], None]) -> None:  # noqa: B027 - optional hook
        """One-time work in the driver before any trial (train a supernet, fit a surrogate); idempotent, and
        resumable when it is long.  The default does nothing."""

    @abstractmethod
    def evaluate(self, spec: TrialSpec, report: Callable[[Any], None] | None = None,
                 checkpoint: Path | None = None) -> TrialRecord:
        """Score ``spec.arch``; the record holds at least ``val_acc``, ``val_n``, ``epochs``, ``full_budget``.

        ``report`` is called with per-epoch progress (an object with ``epoch`` and ``val_acc``) where the
        evaluator has epochs; it may raise to stop the trial early.  ``checkpoint``: a file for resumable
        long evaluations.  Failures raise :class:`~nas_harness.errors.TrialError`.
        """

    def known_costs(self, arch: Any) -> dict[str, float]:
        """Costs of ``arch`` this evaluator knows before evaluating it (a benchmark table's measurements), recorded
        with the trial from the start so budgets and rejections can use them; the default knows none."""
        return {}

    def describe(self) -> str:
        """One line for logs and reports."""
        return self.kind


class EvaluatorConfig(ConfigModel):
    """``[evaluator]``: how each trial's arch is evaluated.  The kind's own options are a table named after the
    kind (``[supernet]``, ``[table]``, ...); ``train`` (from scratch, the default) has none."""

    kind: str = Field(default="train", max_length=64, description=(
        "how a trial's arch is evaluated: 'train' (from scratch, the default) or another registered kind; its "
        "options go in a table named after it"))
    options: dict[str, Any] = Field(default_factory=dict, description=(
        "the kind's options; write them as the top-level table named after the kind (e.g. [supernet])"))

    @model_validator(mode="after")
    def _known_kind(self) -> EvaluatorConfig:
        try:
            self.settings()
        except ConfigError as exc:
            raise restate(exc) from None
        return self

    def settings(self) -> ConfigModel | None:
        """The validated options of this kind (``None`` for a kind without options)."""
        reg = lookup(self.kind)
        if reg.options is None:
            if self.options:
                raise ConfigError(f"{self.kind}: evaluator.kind = {self.kind!r} takes no options table")
            return None
        try:
            return reg.options.from_dict(self.options, self.kind)
        except ValidationError as exc:  # validated inside another table: name the key from the kind's table
            raise ConfigError(printable(format_error(exc, reg.options, self.kind))) from None

    def make(self, ctx: EvalContext) -> Evaluator:
        """The evaluator for a study (``ctx``: its space, data, recipe, seed and folder)."""
        return lookup(self.kind).factory(self.settings(), ctx)


@dataclass(frozen=True)
class _Registered:
    kind: str
    factory: Callable[[Any, EvalContext], Evaluator]
    options: type[ConfigModel] | None


_REGISTRY: dict[str, _Registered] = {}
# Kinds shipped with the package that live above this layer: imported by name on first use (their module calls
# register_evaluator), the way entry points load plug-ins.
_BUILTIN_MODULES = {"supernet": "nas_harness.supernet", "table": "nas_harness.tables",
                    "surrogate": "nas_harness.tables"}


def register_evaluator(kind: str, factory: Callable[[Any, EvalContext], Evaluator],
                       options: type[ConfigModel] | None = None) -> None:
    """Make ``kind`` available to study files: ``factory(options, ctx)`` returns the evaluator, ``options`` is
    the :class:`ConfigModel` of its ``[<kind>]`` table (``None``: the kind takes none)."""
    reserved = ("evaluator", "data", "train", "trial", "objective", "run", "ray", "space", "sampler", "pruner",
                "scaling", "latency", "fidelity")
    if not kind.isidentifier() or (options is not None and kind in reserved):
        raise ValueError(f"evaluator kind {kind!r}: must be an identifier; a kind with options must not share its "
                         "table's name with another study-file table")
    _REGISTRY[kind] = _Registered(kind, factory, options)


def evaluator_kinds() -> list[str]:
    """Every kind a study file may name (registered now or shipped with the package)."""
    return sorted({*_REGISTRY, *(k for k, m in _BUILTIN_MODULES.items() if importlib.util.find_spec(m))})


def lookup(kind: str) -> _Registered:
    """The registration of ``kind`` (importing a shipped kind's module on first use); ConfigError if none."""
    if kind not in _REGISTRY and kind in _BUILTIN_MODULES:
        module = _BUILTIN_MODULES[kind]
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name is None or not module.startswith(exc.name):  # the kind is there, a library it needs is not
                raise ConfigError(f"evaluator.kind: {kind!r} needs the Python package {exc.name!r}, which is not "
                                  "installed") from None
    if kind not in _REGISTRY:
        raise ConfigError(f"evaluator.kind: {kind!r} is not an evaluator; allowed values: "
                          f"{', '.join(repr(k) for k in evaluator_kinds())}")
    return _REGISTRY[kind]


def option_tables() -> set[str]:
    """Top-level study-file tables that hold an evaluator kind's options."""
    return {k for k in evaluator_kinds() if k != "train"}


class TrainEvaluator(Evaluator):
    """Train the arch from scratch on the proxy data with the spec's recipe and seed (the default)."""

    kind = "train"

    def evaluate(self, spec: TrialSpec, report: Callable[[Any], None] | None = None,
                 checkpoint: Path | None = None) -> TrialRecord:
        from nas_harness.data import load_proxy
        from nas_harness.evaluators._train import train_and_measure

        return train_and_measure(spec, load_proxy(spec.data), report, checkpoint)

    def describe(self) -> str:
        return "train from scratch"


register_evaluator("train", lambda options, ctx: TrainEvaluator())

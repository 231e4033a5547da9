"""The one shape of a backend: where a study's trials, or a list of fixed jobs, run.

A backend is one class registered under its name (``[run] backend = "<name>"``), built from the typed
``[ray]``-style resources table, with two methods: :meth:`Backend.run_study` (a study's trials, driven by the
one :class:`~nas_harness.backends.loop.TrialLoop`) and :meth:`Backend.run_jobs` (a fixed list of (arch, seed)
jobs for ``confirm``, ``fidelity``, ablations and scaling curves).  What a trial does is not a backend's
business: every backend evaluates through the task (:class:`~nas_harness.backends.StudyTask`) or
:func:`nas_harness.trial.run_trial`, and stores through :mod:`nas_harness.records`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from nas_harness.errors import ConfigError

__all__ = ["Backend", "RunResult", "StudyRun", "backend_names", "get_backend", "register_backend"]


@dataclass
class StudyRun:
    """What a backend is given to run a study's trials.

    ``slots_for(study) -> TrialSlots`` hands out the study's trials (all workers together finish exactly its
    ``n_trials``); ``open_worker`` (local backend, ``workers > 1``): ``(module, function, args)`` naming a
    function ``f(*args, index=i, log=log) -> (study, task, slots)`` that opens the study in a fresh worker
    process (plain data, so nothing is imported before the worker is set up).
    """

    study: Any
    task: Any  # nas_harness.backends.StudyTask
    slots_for: Callable[[Any], Any]
    sampler: Any = None
    deadline: float | None = None
    max_failures: int = 0
    progress: Any = None
    log: Callable[[str], None] = print
    on_stored: Callable[[Any], None] | None = None
    study_dir: Path | None = None
    workers: int = 1
    open_worker: tuple[str, str, tuple[Any, ...]] | None = None


@dataclass
class RunResult:
    """What a backend's run of a study did."""

    ran: int = 0
    failed: int = 0
    stopped_by_failures: bool = False
    exhausted: bool = False  # a grid study: every arch of the space was evaluated
    max_concurrent: int = 0  # most trials that ran at once


class Backend(ABC):
    """Where trials run.  Subclasses set ``name`` and are registered with :func:`register_backend`.

    ``resources``: the ``[ray]`` table (:class:`~nas_harness.backends.RayConfig` or a study's subclass with a
    scheduler); backends that need none ignore it.
    """

    name: ClassVar[str]

    def __init__(self, resources: Any = None) -> None:
        from nas_harness.backends.settings import RayConfig

        self.resources = resources if resources is not None else RayConfig()

    @abstractmethod
    def run_study(self, run: StudyRun) -> RunResult:
        """Run ``run.study``'s trials until it has its trials, the deadline passes or ``max_failures`` trials
        failed.  Ctrl-C: the trials in flight are failed as interrupted and queued again, then
        KeyboardInterrupt propagates."""

    @abstractmethod
    def run_jobs(self, jobs: Sequence[Any], *, on_result: Callable[[Any], None] | None, cache_dir: str | None,
                 checkpoint_dir: str | None, on_epoch: Callable[[str, Any], None] | None,
                 workers: int) -> list[Any]:
        """Run fixed :class:`~nas_harness.backends.Job` s; each :class:`~nas_harness.backends.JobResult` reaches
        ``on_result`` in this process as it finishes; returns them in the order of ``jobs``."""


_BACKENDS: dict[str, type[Backend]] = {}


def register_backend(cls: type[Backend]) -> type[Backend]:
    """Register a backend class under ``cls.name`` (usable as a class decorator)."""
    _BACKENDS[cls.name] = cls
    return cls


def backend_names() -> list[str]:
    return sorted(_BACKENDS)


def get_backend(name: str, resources: Any = None) -> Backend:
    """The backend registered as ``name``, built with ``resources``; ConfigError naming the allowed ones."""
    cls = _BACKENDS.get(name)
    if cls is None:
        allowed = ", ".join(repr(n) for n in backend_names())
        raise ConfigError(f"backend: {name!r}; allowed values: {allowed}")
    return cls(resources)

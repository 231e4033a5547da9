"""The tracker interface and :class:`StudyTracking`, which drives every configured tracker of one study.

A study (a search, or the job store of ``confirm``, ``fidelity``, ``ablate``) is one *parent* run; each stored
trial is one *child* run.  Every method of a :class:`Tracker` is idempotent: the parent is found by the study
name before one is created, a child by its trial key, so a second worker, a re-run, a retried trial or the
catch-up at the end (:meth:`StudyTracking.sync`) never logs a trial twice.

:class:`StudyTracking` makes trackers safe to call from the trial loop: the first exception of a tracker (a
server that is down, a library that is missing, a folder that cannot be written) is ONE warning line, after
which that tracker is left out for the rest of the run; the study goes on and its storage stays the record of
truth (a later run of the same study logs what was missed).
"""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from nas_harness.tracking._entry import TrialEntry, clean, entry_of_trial
from nas_harness.tracking.config import TrackingSettings

_GOES_ON = "this run goes on without it (the study storage keeps every result; a later run logs what was missed)"


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it wraps, breadth first: causes, contexts, an exception given as an argument (requests'
    ConnectionError) and urllib3's ``reason`` (a retry that gave up)."""
    out: list[BaseException] = []
    todo: list[Any] = [exc]
    while todo and len(out) < 50:
        e = todo.pop(0)
        if not isinstance(e, BaseException) or any(e is seen for seen in out):
            continue
        out.append(e)
        todo += [e.__cause__, e.__context__, getattr(e, "reason", None), *e.args]
    return out


def failure_text(exc: BaseException, secrets: Iterable[str] = (), limit: int = 240) -> str:
    """Why a tracker failed, in a few words, without credentials: ``'MlflowException: Connection refused'``.

    A client library wraps a dead server in layers of messages that repeat the URL (MLflow -> requests ->
    urllib3 -> the socket); the socket's own reason (an OSError's ``strerror``), else the reason urllib3 gave
    up with (``too many 503 error responses``), else the exception's text says it.  Shortened at a word
    boundary to about ``limit`` characters, never mid-word."""
    import textwrap

    chain = _causes(exc)
    detail = next((e.strerror for e in chain if isinstance(e, OSError) and e.strerror), None)
    if detail is None:
        gave_up = [getattr(e, "reason", None) for e in chain]
        detail = next((str(r) for r in gave_up if isinstance(r, BaseException) and str(r)), None) or str(exc)
    text = clean(" ".join(f"{type(exc).__name__}: {detail}".split()), secrets)
    return textwrap.shorten(text, width=limit, placeholder=" ...")


class Tracker(ABC):
    """One experiment tracker (MLflow, TensorBoard) for one study."""

    #: Name used in messages, e.g. "mlflow".
    kind: str = ""

    @abstractmethod
    def describe(self) -> str:
        """Where it logs, without credentials (e.g. 'mlflow http://host:5000, experiment nas-harness')."""

    @abstractmethod
    def start(self, study: str, params: Mapping[str, str], tags: Mapping[str, str]) -> None:
        """Find (by ``study``) or create the study's parent run and record ``params`` / ``tags`` on it."""

    @abstractmethod
    def logged(self) -> set[str]:
        """Keys of the trials already logged for this study (by any worker)."""

    @abstractmethod
    def log_trial(self, entry: TrialEntry) -> bool:
        """Log one trial as a child run unless one with its key exists; True if it was logged now."""

    @abstractmethod
    def log_artifacts(self, paths: Sequence[Path], folder: str) -> None:
        """Attach files (figures, a report, a table) to the parent run under ``folder``."""

    def close(self) -> None:  # noqa: B027 - optional
        """Flush and mark the parent run as ended by this worker."""


class StudyTracking:
    """Every configured tracker of one study, each one failing alone and quietly (see the module docstring).

    ``secrets``: URLs whose passwords must never be logged (the storage, the Ray address, the tracking URI).
    """

    def __init__(self, trackers: Sequence[Tracker], study: str, *, secrets: Iterable[str] = (),
                 log: Callable[[str], None] | None = None) -> None:
        self.trackers = list(trackers)
        self.study = study
        self.secrets = tuple(s for s in secrets if s)
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.value_names: Sequence[str] = ()

    @property
    def active(self) -> bool:
        return bool(self.trackers)

    def _each(self, what: str, fn: Callable[[Tracker], Any]) -> None:
        for tracker in list(self.trackers):
            try:
                fn(tracker)
            except Exception as exc:  # a tracker never stops a study
                self.trackers.remove(tracker)
                self.log(f"warning: {clean(tracker.describe(), self.secrets)}: {what} failed "
                         f"({failure_text(exc, self.secrets)}); {_GOES_ON}")

    def start(self, params: Mapping[str, Any] | None = None, tags: Mapping[str, Any] | None = None,
              value_names: Sequence[str] = ()) -> None:
        """Open (or find) the parent run of the study on every tracker."""
        self.value_names = tuple(value_names)
        p = {clean(str(k), self.secrets)[:250]: clean(str(v), self.secrets) for k, v in (params or {}).items()
             if v is not None}
        t = {str(k): clean(str(v), self.secrets) for k, v in (tags or {}).items() if v is not None}
        self._each("starting the study's run", lambda tr: tr.start(self.study, p, t))

    def trial(self, trial: Any) -> None:
        """Log one finished (stored) Optuna trial of a search; a no-op for one already logged."""
        if not self.trackers:
            return

        def log(tr: Tracker) -> None:
            e = entry_of_trial(trial, self.value_names, self.secrets, f"study {self.study!r}")
            if e is not None:
                tr.log_trial(e)

        self._each(f"logging trial {trial.number}", log)

    def entry(self, e: TrialEntry) -> None:
        """Log one prepared entry (a stored job of confirm / fidelity / ablate)."""
        self._each(f"logging {e.name}", lambda tr: tr.log_trial(e))

    def sync(self, trials: Iterable[Any]) -> int:
        """Log every finished trial of ``trials`` that no tracker has yet (trials of a worker that died after
        storing, of a run made with tracking off); returns how many were logged by the first tracker."""
        trials = list(trials)
        done = [0]

        def catch_up(tr: Tracker) -> None:
            have = tr.logged()
            n = 0
            for t in trials:
                if str(t.number) in have:
                    continue
                e = entry_of_trial(t, self.value_names, self.secrets, f"study {self.study!r}")
                if e is not None and tr.log_trial(e):
                    n += 1
            done[0] = done[0] or n

        self._each("catching up on stored trials", catch_up)
        return done[0]

    def artifacts(self, paths: Iterable[Path], folder: str = "") -> None:
        """Attach the files that exist among ``paths`` to the study's parent run."""
        files = [Path(p) for p in paths if Path(p).is_file()]
        if files:
            self._each("attaching files", lambda tr: tr.log_artifacts(files, folder))

    def close(self) -> None:
        self._each("closing", lambda tr: tr.close())
        self.trackers = []


def open_tracking(settings: TrackingSettings | None, study: str, *, secrets: Iterable[str] = (),
                  log: Callable[[str], None] | None = None) -> StudyTracking:
    """The trackers ``settings`` turn on for ``study`` (none when None / all off).  A tracker that cannot be
    set up (library missing, URI wrong) is one warning line and left out."""
    tracking = StudyTracking([], study, secrets=[*secrets, *([settings.mlflow_uri] if settings and
                                                              settings.mlflow_uri else [])], log=log)
    if settings is None or not settings.active:
        return tracking
    if settings.mlflow_uri is not None:
        try:
            from nas_harness.tracking._mlflow import MLflowTracker

            tracking.trackers.append(MLflowTracker(settings.mlflow_uri, settings.experiment, settings.timeout_s))
        except Exception as exc:
            hint = "; pip install 'nas-harness[mlflow]'" if isinstance(exc, ImportError) else ""
            tracking.log(f"warning: mlflow {clean(settings.mlflow_uri, tracking.secrets)}: cannot start "
                         f"({failure_text(exc, tracking.secrets)}{hint}); {_GOES_ON}")
    if settings.tensorboard_dir is not None:
        try:
            from nas_harness.tracking._tensorboard import TensorBoardTracker

            tracking.trackers.append(TensorBoardTracker(settings.tensorboard_dir))
        except Exception as exc:
            hint = "; pip install 'nas-harness[tensorboard]'" if isinstance(exc, ImportError) else ""
            tracking.log(f"warning: tensorboard {settings.tensorboard_dir}: cannot start "
                         f"({failure_text(exc, tracking.secrets)}{hint}); {_GOES_ON}")
    return tracking

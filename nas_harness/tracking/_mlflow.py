"""MLflow tracker (``mlflow-skinny`` client): one parent run per study, one child run per trial.

Runs are found by tags, never remembered: the parent by ``nas.study`` + ``nas.role = study``, a child by
``nas.study`` + ``nas.trial`` (the trial key) + ``nas.role = trial``.  Two writers that create the same run at
the same moment (two workers, a worker and the catch-up of another) both see both runs afterwards and keep the
same one -- the earliest by (start time, run id) -- the other writer deleting its own; so a trial ends up
logged once whatever the timing.  Requests to a server are bounded: ``MLFLOW_HTTP_REQUEST_TIMEOUT`` (the
``timeout_s`` setting) and one retry, unless the environment already sets them.

A local folder becomes an SQLite store ``<folder>/mlflow.db`` with artifacts in ``<folder>/artifacts``
(MLflow 3 keeps its plain-file store in maintenance mode); ``mlflow ui --backend-store-uri
sqlite:///<folder>/mlflow.db`` shows it.  Creating it is serialised by a lock file, so several workers can
start at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from nas_harness.tracking._base import Tracker
from nas_harness.tracking._entry import TrialEntry

_STATUS = {"complete": "FINISHED", "pruned": "KILLED", "fail": "FAILED"}
_MAX_PARAMS, _MAX_METRICS = 100, 1000  # per log_batch call (MLflow's limits)


#: Loggers MLflow configures with its own stderr handler when imported (at INFO: "Creating initial MLflow
#: database tables...", retries, "Max retries exceeded").  A failure reaches the user as StudyTracking's one
#: warning line; what MLflow itself says below ERROR is kept off the terminal.
_MLFLOW_LOGGERS = ("mlflow", "alembic", "huey")


def _bound_requests(timeout_s: int) -> None:
    """Bound the time spent on a dead server (MLflow's defaults retry for minutes)."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(int(timeout_s)))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", "0")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # stdout belongs to the CLI


def _quiet() -> None:
    """Keep MLflow's own log lines (see :data:`_MLFLOW_LOGGERS`) off stderr.  Called after ``import mlflow``,
    which sets these loggers' levels itself (``MLFLOW_LOGGING_LEVEL``, INFO by default)."""
    for name in _MLFLOW_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


@contextlib.contextmanager
def _folder_lock(folder: Path | None) -> Iterator[None]:
    if folder is None:
        yield
        return
    import fcntl

    from nas_harness._config import open_lock

    folder.mkdir(parents=True, exist_ok=True)
    with open_lock(folder / ".lock", f"tracking: lock file {str(folder / '.lock')!r}") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class MLflowTracker(Tracker):
    """``uri``: an MLflow tracking URI or a local folder (see the module docstring); ``experiment``: its name."""

    kind = "mlflow"

    def __init__(self, uri: str, experiment: str = "nas-harness", timeout_s: int = 10) -> None:
        from nas_harness.records import redact

        self.shown = redact(uri)
        self.experiment_name = experiment
        _bound_requests(timeout_s)
        from mlflow import MlflowClient

        _quiet()
        folder = None
        artifacts = None
        if "://" not in uri:
            folder = Path(uri).resolve()
            artifacts = (folder / "artifacts").as_uri()
            uri = f"sqlite:///{folder / 'mlflow.db'}"
        self.uri = uri
        with _folder_lock(folder):
            self.client = MlflowClient(tracking_uri=uri)
            exp = self.client.get_experiment_by_name(experiment)
            if exp is None:
                try:
                    self.experiment_id = self.client.create_experiment(experiment, artifact_location=artifacts)
                except Exception:  # created by another worker in between
                    exp = self.client.get_experiment_by_name(experiment)
                    if exp is None:
                        raise
                    self.experiment_id = exp.experiment_id
            else:
                self.experiment_id = exp.experiment_id
        self.study = ""
        self.parent_id: str | None = None

    def describe(self) -> str:
        return f"mlflow {self.shown} (experiment {self.experiment_name!r})"

    # ------------------------------------------------------------------------------------------ runs
    def _find(self, filter_string: str) -> list[Any]:
        from mlflow.entities import ViewType

        out: list[Any] = []
        token = None
        while True:
            page = self.client.search_runs([self.experiment_id], filter_string, run_view_type=ViewType.ACTIVE_ONLY,
                                           max_results=1000, page_token=token)
            out += list(page)
            token = page.token
            if not token:
                return sorted(out, key=lambda r: (r.info.start_time or 0, r.info.run_id))

    def _create_once(self, filter_string: str, name: str, tags: Mapping[str, str]) -> tuple[str, bool]:
        """(run id, created now): the run matching ``filter_string``, created when there is none (module
        docstring: a run created at the same time by another writer wins when it is the earlier one)."""
        found = self._find(filter_string)
        if found:
            return found[0].info.run_id, False
        run = self.client.create_run(self.experiment_id, run_name=name, tags=dict(tags))
        mine = run.info.run_id
        keeper = next(iter(self._find(filter_string)), None)
        if keeper is not None and keeper.info.run_id != mine:
            self.client.delete_run(mine)
            return keeper.info.run_id, False
        return mine, True

    def _batch(self, run_id: str, params: Mapping[str, str], metrics: list[tuple[str, float, int]]) -> None:
        from mlflow.entities import Metric, Param

        now = int(time.time() * 1000)
        ps = [Param(k, v) for k, v in params.items()]
        ms = [Metric(k, float(v), now, int(step)) for k, v, step in metrics]
        while ps or ms:
            self.client.log_batch(run_id, params=ps[:_MAX_PARAMS], metrics=ms[:_MAX_METRICS])
            ps, ms = ps[_MAX_PARAMS:], ms[_MAX_METRICS:]

    def start(self, study: str, params: Mapping[str, str], tags: Mapping[str, str]) -> None:
        self.study = study
        flt = f"tags.`nas.study` = '{study}' and tags.`nas.role` = 'study'"
        self.parent_id, created = self._create_once(flt, study, {"nas.study": study, "nas.role": "study", **tags})
        if created:
            self._batch(self.parent_id, params, [])
        else:
            self.client.update_run(self.parent_id, status="RUNNING")

    def logged(self) -> set[str]:
        runs = self._find(f"tags.`nas.study` = '{self.study}' and tags.`nas.role` = 'trial'")
        return {r.data.tags.get("nas.trial", "") for r in runs}

    def log_trial(self, entry: TrialEntry) -> bool:
        if self.parent_id is None:
            raise RuntimeError("start() was not called")
        key = entry.key.replace("'", "")
        flt = f"tags.`nas.study` = '{self.study}' and tags.`nas.role` = 'trial' and tags.`nas.trial` = '{key}'"
        tags = {"nas.study": self.study, "nas.role": "trial", "nas.trial": key, "nas.state": entry.state,
                "mlflow.parentRunId": self.parent_id}
        run_id, created = self._create_once(flt, entry.name, tags)
        if not created:
            return False
        metrics = [(k, v, 0) for k, v in entry.metrics.items()]
        metrics += [(name, v, step) for name, curve in entry.curves.items() for step, v in curve]
        self._batch(run_id, entry.params, metrics)
        self.client.set_terminated(run_id, _STATUS.get(entry.state, "FAILED"))
        return True

    def log_artifacts(self, paths: Sequence[Path], folder: str) -> None:
        if self.parent_id is None:
            raise RuntimeError("start() was not called")
        for p in paths:
            self.client.log_artifact(self.parent_id, str(p), artifact_path=folder or None)

    def close(self) -> None:
        if self.parent_id is not None:
            self.client.set_terminated(self.parent_id, "FINISHED")

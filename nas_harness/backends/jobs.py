"""Run a fixed list of (arch, seed) trials — no search — on any backend (``confirm``, ``fidelity``, ablations,
scaling curves).

Every job goes through :func:`nas_harness.trial.run_trial`, the same function the search backends use.
Results (trial records) reach ``on_result`` in the driver process as each job finishes, so callers can persist them
incrementally and resume after a crash.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas_harness.backends._task import reason
from nas_harness.records import TrialRecord
from nas_harness.trial import ResultCache, TrialSpec, run_trial


@dataclass(frozen=True)
class Job:
    """One fixed trial: a caller-chosen unique ``key`` and its :class:`TrialSpec`."""

    key: str
    spec: TrialSpec


@dataclass
class JobResult:
    """Outcome of one job: the ``record`` from ``run_trial`` when ``ok``, else ``error`` ('Type: message');
    ``interrupted`` when the worker died (not the job's fault: it may be run again)."""

    key: str
    ok: bool
    record: TrialRecord | None
    error: str | None
    wall_s: float
    interrupted: bool = False


def run_one(job: Job, cache_dir: str | None, checkpoint_dir: str | None = None,
            report: Callable[[Any], None] | None = None) -> JobResult:
    """One job in this process (module level: worker processes and Ray tasks call it too)."""
    t0 = time.perf_counter()
    cache = ResultCache(Path(cache_dir)) if cache_dir else None
    try:
        record = run_trial(job.spec, report=report, cache=cache, checkpoint_dir=checkpoint_dir)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # a failing job is a result, the others go on
        return JobResult(job.key, False, None, reason(exc), time.perf_counter() - t0)
    return JobResult(job.key, True, record, None, time.perf_counter() - t0)


def run_jobs(jobs: Sequence[Job], *, backend: str = "local", resources: Any = None,
             on_result: Callable[[JobResult], None] | None = None,
             cache_dir: str | Path | None = None, checkpoint_dir: str | Path | None = None,
             on_epoch: Callable[[str, Any], None] | None = None, workers: int = 1) -> list[JobResult]:
    """Run ``jobs`` on the backend named ``backend`` and return their results in the order of ``jobs``.

    ``resources``: the ``[ray]`` table (:class:`~nas_harness.backends.RayConfig`: CPUs/GPUs per job, at most
    ``max_concurrent`` at once, the cluster address) for the Ray backend.  ``workers`` (local backend): 1 = one
    after another in this process, N = N worker processes, 0 = as many as the cores allow at the jobs' threads.
    ``on_result`` is always called in this process, as each job finishes.  ``checkpoint_dir`` (a path every
    worker can reach) makes each job resumable mid-training.  ``on_epoch(key, EpochReport)`` follows training
    epoch by epoch (one local worker only: other workers and Ray tasks report when they finish).
    """
    from nas_harness.backends._backend import get_backend

    keys = [j.key for j in jobs]
    if len(set(keys)) != len(keys):
        from nas_harness.errors import ConfigError

        dup = next(k for k in keys if keys.count(k) > 1)
        raise ConfigError(f"jobs: duplicate key {dup!r}; every job needs a unique key")
    chosen = get_backend(backend, resources)
    return chosen.run_jobs(jobs, on_result=on_result, cache_dir=str(cache_dir) if cache_dir is not None else None,
                           checkpoint_dir=str(Path(checkpoint_dir).resolve()) if checkpoint_dir is not None else None,
                           on_epoch=on_epoch, workers=workers)

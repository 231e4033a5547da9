"""Where trials run.  A backend is one class (:class:`Backend`, registered by name: ``local``, ``ray``) that runs
a study's trials through the one trial loop (:class:`TrialLoop`) or a list of fixed jobs (:func:`run_jobs`).

Every backend evaluates through the task (:class:`StudyTask`, which calls :func:`nas_harness.trial.run_trial`)
and stores outcomes through :func:`nas_harness.records.tell`; nothing about *what* a trial does lives here.
Ray is imported only when the Ray backend is used.
"""

from nas_harness.backends._backend import (
    Backend,
    RunResult,
    StudyRun,
    backend_names,
    get_backend,
    register_backend,
)
from nas_harness.backends._procs import default_workers, fit_workers
from nas_harness.backends._task import StudyTask, TrialStopped
from nas_harness.backends.jobs import Job, JobResult, run_jobs
from nas_harness.backends.local import LocalBackend, run_local
from nas_harness.backends.loop import LoopResult, TrialLoop
from nas_harness.backends.ray import RayBackend
from nas_harness.backends.settings import RayConfig, RunSettings

__all__ = ["Backend", "Job", "JobResult", "LocalBackend", "LoopResult", "RayBackend", "RayConfig", "RunResult",
           "RunSettings", "StudyRun", "StudyTask", "TrialLoop", "TrialStopped", "backend_names", "default_workers",
           "fit_workers", "get_backend", "register_backend", "run_jobs", "run_local"]

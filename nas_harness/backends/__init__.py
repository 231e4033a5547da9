"""Where trials run: ``local`` (an Optuna loop in this process) or ``ray`` (Ray Tune / Ray tasks).

Both call :func:`nas_harness.trial.run_trial`; nothing about *what* a trial does lives here.
Ray is imported only when the Ray backend is used.
"""

from nas_harness.backends._task import Outcome, StudyTask, TrialStopped
from nas_harness.backends.jobs import Job, JobResult, run_jobs
from nas_harness.backends.local import optuna_objective, run_local

__all__ = ["Job", "JobResult", "Outcome", "StudyTask", "TrialStopped", "optuna_objective", "run_jobs",
           "run_local"]

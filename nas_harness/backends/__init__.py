"""Where trials run: ``local`` (a loop in this process) or ``ray`` (Ray Tune / Ray tasks).

Both call :func:`nas_harness.trial.run_trial` and store outcomes through :func:`nas_harness.records.tell`;
nothing about *what* a trial does lives here.  Ray is imported only when the Ray backend is used.
"""

from nas_harness.backends._task import StudyTask, TrialStopped
from nas_harness.backends.jobs import Job, JobResult, run_jobs
from nas_harness.backends.local import LoopResult, evaluate_trial, run_local
from nas_harness.backends.settings import RayConfig, RunSettings

__all__ = ["Job", "JobResult", "LoopResult", "RayConfig", "RunSettings", "StudyTask", "TrialStopped",
           "evaluate_trial", "run_jobs", "run_local"]

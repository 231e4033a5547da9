"""Experiment trackers: a study's trials copied to MLflow and TensorBoard, where researchers already look.

- :class:`TrackingConfig`: the ``[tracking]`` table of study and ablation files (and the ``--mlflow [URI]``,
  ``--tensorboard [DIR]`` flags, :func:`tracking_overrides`).
- :func:`open_tracking` -> :class:`StudyTracking`: one parent run per study, one child run per stored trial
  (its record as params and metrics, accuracies with Wilson 95% intervals, per-epoch curves), figures and
  reports attached to the parent; each trial logged once whatever the number of workers, retries and re-runs;
  a tracker that fails is one warning line and the study goes on.
- :class:`Tracker`: the interface of one tracker; :class:`TrialEntry` what it logs for one trial.

The trackers' own client libraries do the work (``mlflow-skinny``, ``torch.utils.tensorboard``); they are
optional extras (``pip install 'nas-harness[mlflow]'`` / ``'nas-harness[tensorboard]'``) imported only when a
tracker is on.
"""

from nas_harness.tracking._base import StudyTracking, Tracker, open_tracking
from nas_harness.tracking._entry import TrialEntry, clean, entry, entry_of_job, entry_of_trial, flat_params
from nas_harness.tracking.config import TrackingConfig, TrackingSettings, tracking_overrides

__all__ = ["StudyTracking", "Tracker", "TrackingConfig", "TrackingSettings", "TrialEntry", "clean", "entry",
           "entry_of_job", "entry_of_trial", "flat_params", "open_tracking", "tracking_overrides"]

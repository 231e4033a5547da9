"""Re-evaluation of fixed architectures: durable job lists, confirmation over seeds, proxy fidelity, and
training-free predictors.

- :mod:`~nas_harness.evaluation.store`: :class:`JobStore` / :func:`run_stored_jobs`, the durable, resumable
  list of (group, seed) training jobs shared with the ablation runner;
- :mod:`~nas_harness.evaluation.confirm`: ``nas-harness confirm`` -- retrain the top Pareto archs and the
  references over fresh seeds, paired differences, the front of the means;
- :mod:`~nas_harness.evaluation.fidelity`: ``nas-harness fidelity`` -- retrain archs at a higher fidelity and
  measure how well the search's proxy ranked them (Kendall tau, Spearman rho, top-k recall, regret);
- :mod:`~nas_harness.evaluation.zero_cost`: parameters, MACs and training-free scores (synflow, NASWOT,
  grad_norm) judged on the same archs.

Layering: uses :mod:`nas_harness.backends`, :mod:`~nas_harness.trial`, :mod:`~nas_harness.records` and
:mod:`~nas_harness.results`; never the search or ablation packages.
"""

from nas_harness.evaluation.confirm import ConfirmResult, ConfirmSettings, run_confirm
from nas_harness.evaluation.fidelity import FidelityConfig, FidelityResult, load_fidelity, run_fidelity
from nas_harness.evaluation.recipe import Candidate, StudyRecipe, study_recipe
from nas_harness.evaluation.store import JobStore, StoredJobs, StoredRun, run_stored_jobs
from nas_harness.evaluation.zero_cost import PREDICTORS, grad_norm, naswot, synflow, zero_cost_scores

__all__ = [
    "PREDICTORS",
    "Candidate",
    "ConfirmResult",
    "ConfirmSettings",
    "FidelityConfig",
    "FidelityResult",
    "JobStore",
    "StoredJobs",
    "StoredRun",
    "StudyRecipe",
    "grad_norm",
    "load_fidelity",
    "naswot",
    "run_confirm",
    "run_fidelity",
    "run_stored_jobs",
    "study_recipe",
    "synflow",
    "zero_cost_scores",
]

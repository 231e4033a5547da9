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

from nas_harness.evaluation.store import JobStore, StoredJobs, StoredRun, run_stored_jobs

__all__ = ["JobStore", "StoredJobs", "StoredRun", "run_stored_jobs"]

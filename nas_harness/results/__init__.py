"""Study results: load trials into pandas, Pareto fronts and hypervolume, intervals and comparisons
(:mod:`nas_harness.results.stats`), and export a chosen arch.

Everything here reads studies only through the trial/study user-attribute contract, so it works on studies
written by any backend (local Optuna, Ray) and by older versions of the search code.
"""

from nas_harness.results.export import ExportedArch, compound_family, export_arch, rank_trials
from nas_harness.results.frame import (
    StudySource,
    accuracy_note,
    add_intervals,
    choice_columns,
    export_frame,
    load_study,
    resolve_source,
    study_frame,
    trials_frame,
)
from nas_harness.results.pareto import (
    ReferencePoint,
    best_so_far,
    default_reference_point,
    dominated_by,
    eligible,
    hypervolume,
    hypervolume_2d,
    hypervolume_history,
    pareto_front,
    pareto_mask,
)
from nas_harness.results.stats import (
    BEATS,
    CONFIDENCE,
    TIED,
    WORSE,
    accuracy_difference,
    accuracy_interval,
    kendall_tau,
    kendall_tau_difference,
    paired_delta,
    rank_agreement,
    regret,
    spearman_rho,
    summarize,
    top_k_recall,
    verdict,
)

__all__ = [
    "BEATS",
    "CONFIDENCE",
    "TIED",
    "WORSE",
    "ExportedArch",
    "ReferencePoint",
    "StudySource",
    "accuracy_difference",
    "accuracy_interval",
    "accuracy_note",
    "add_intervals",
    "best_so_far",
    "choice_columns",
    "compound_family",
    "default_reference_point",
    "dominated_by",
    "eligible",
    "export_arch",
    "export_frame",
    "hypervolume",
    "hypervolume_2d",
    "hypervolume_history",
    "kendall_tau",
    "kendall_tau_difference",
    "load_study",
    "paired_delta",
    "pareto_front",
    "pareto_mask",
    "rank_agreement",
    "rank_trials",
    "regret",
    "resolve_source",
    "spearman_rho",
    "study_frame",
    "summarize",
    "top_k_recall",
    "trials_frame",
    "verdict",
]

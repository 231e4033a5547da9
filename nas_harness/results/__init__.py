"""Study results: load trials into pandas, Pareto fronts and hypervolume, and export a chosen arch.

Everything here reads studies only through the trial/study user-attribute contract, so it works on studies
written by any backend (local Optuna, Ray) and by older versions of the search code.
"""

from nas_harness.results.export import ExportedArch, compound_family, export_arch, rank_trials
from nas_harness.results.frame import (
    StudySource,
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

__all__ = [
    "ExportedArch",
    "ReferencePoint",
    "StudySource",
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
    "load_study",
    "pareto_front",
    "pareto_mask",
    "rank_trials",
    "resolve_source",
    "study_frame",
    "trials_frame",
]

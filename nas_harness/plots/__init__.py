"""Paper-ready seaborn figures of studies: accuracy vs cost (the study's MACs, params or latency) with the Pareto
front, progress over trial numbers, importance.

All plotting functions return ``matplotlib.figure.Figure`` objects built without pyplot (Agg canvas), so
they work headless and in notebooks alike; :func:`write_study_figures` writes the standard set as PNG + SVG.
"""

from nas_harness.plots.evaluation import plot_confirm, plot_fidelity
from nas_harness.plots.importance import param_importances, plot_importance
from nas_harness.plots.progress import plot_progress
from nas_harness.plots.scatter import plot_accuracy_vs_cost, plot_by_choice, plot_fronts
from nas_harness.plots.study import write_comparison_figures, write_study_figures

__all__ = [
    "param_importances",
    "plot_accuracy_vs_cost",
    "plot_by_choice",
    "plot_confirm",
    "plot_fidelity",
    "plot_fronts",
    "plot_importance",
    "plot_progress",
    "write_comparison_figures",
    "write_study_figures",
]

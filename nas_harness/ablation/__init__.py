"""Ablations: train a base arch and named variants of it (no SE, no skips, ...) over several seeds and
report what each component buys, with paired statistics across seeds.

Layering: uses ``nas_harness.trial`` (the one trial function) through ``nas_harness.backends``; nothing
below imports this package.
"""

from .config import AblationConfig, AblationTrial, load_ablation, parse_ablation
from .report import ReportPaths, markdown_table, plot_ablation, write_report
from .runner import AblationRun, AblationStore, RunRecord, load_records, plan_jobs, run_ablation
from .stats import PairedDelta, Summary, VariantStats, paired_delta, summarize, variant_table
from .supernet import AblationSupernet, SupernetRow, agreement, run_supernet_scores, supernet_rows
from .variants import (
    BUILTIN_VARIANTS,
    Override,
    VariantDef,
    apply_override,
    apply_variant,
    describe,
    parse_variant_def,
    resolve_variants,
    se_only_in,
)

__all__ = [
    "BUILTIN_VARIANTS",
    "AblationConfig",
    "AblationRun",
    "AblationStore",
    "AblationSupernet",
    "AblationTrial",
    "Override",
    "PairedDelta",
    "ReportPaths",
    "RunRecord",
    "Summary",
    "SupernetRow",
    "VariantDef",
    "VariantStats",
    "agreement",
    "apply_override",
    "apply_variant",
    "describe",
    "load_ablation",
    "load_records",
    "markdown_table",
    "paired_delta",
    "parse_ablation",
    "parse_variant_def",
    "plan_jobs",
    "plot_ablation",
    "resolve_variants",
    "run_ablation",
    "run_supernet_scores",
    "se_only_in",
    "summarize",
    "supernet_rows",
    "variant_table",
    "write_report",
]

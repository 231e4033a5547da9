"""Scaling curves (EfficientNet, Tan & Le 2019, Figures 3, 4 and 8) on a proxy: scale a base by width only,
depth only, resolution only, width at fixed (depth, resolution) and compound scaling; train every variant over
paired seeds (durably, resumable, locally or on Ray) and say with intervals where each single-dimension curve
stops gaining and whether compound scaling beats single-dimension scaling at matched MACs.

Layering: uses ``nas_harness.evaluation.store`` (the durable job runner of the ablations) and
``nas_harness.results.stats``; nothing below imports this package.
"""

from .config import (
    CurvePoint,
    CurvesConfig,
    CurvesTrial,
    ScalingCurvesConfig,
    load_scaling_curves,
    parse_scaling_curves,
)
from .report import CurvesReport, analyse, write_report
from .runner import CurvesRun, CurvesStore, load_records, network_macs, plan_jobs, run_curves, variant_spec
from .stats import CurveData, Match, Segment, marginal_gains, match_at_macs, point_summaries, stops_gaining

__all__ = [
    "CurveData",
    "CurvePoint",
    "CurvesConfig",
    "CurvesReport",
    "CurvesRun",
    "CurvesStore",
    "CurvesTrial",
    "Match",
    "ScalingCurvesConfig",
    "Segment",
    "analyse",
    "load_records",
    "load_scaling_curves",
    "marginal_gains",
    "match_at_macs",
    "network_macs",
    "parse_scaling_curves",
    "plan_jobs",
    "point_summaries",
    "run_curves",
    "stops_gaining",
    "variant_spec",
    "write_report",
]

"""Evaluators: how a trial scores an architecture (train from scratch, a supernet, a benchmark table, ...).

See :mod:`nas_harness.evaluators._base` for the contract and ``docs/architecture.md`` for how to add one.
"""

from nas_harness.evaluators._base import (
    EvalContext,
    Evaluator,
    EvaluatorConfig,
    TrainEvaluator,
    TrialSpec,
    evaluator_kinds,
    library_versions,
    lookup,
    option_tables,
    register_evaluator,
)

__all__ = ["EvalContext", "Evaluator", "EvaluatorConfig", "TrainEvaluator", "TrialSpec", "evaluator_kinds",
           "library_versions", "lookup", "option_tables", "register_evaluator"]

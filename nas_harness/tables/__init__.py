"""Benchmark tables: the packaged Accel-NASBench records, the ``table`` and ``surrogate`` evaluators.

Importing this package registers the evaluator kinds ``table`` and ``surrogate`` (study files: ``[evaluator]
kind = "table"`` with a ``[table]`` options table, or ``kind = "surrogate"`` with ``[surrogate]``).  Data:
Accel-NASBench (Ahmad et al., DAC 2024), Apache-2.0; see ``nas_harness/tables/data/NOTICE``.
"""

from nas_harness.tables._data import (
    DATA_SHA256,
    IMAGENET_VAL_N,
    PERF_COLUMNS,
    BenchmarkTable,
    accel_nasbench,
    accel_nasbench_space,
    arch_features,
    record_arch,
    records_with,
    table_from_records,
)
from nas_harness.tables._evaluators import SurrogateEvaluator, SurrogateOptions, TableEvaluator, TableOptions
from nas_harness.tables._sampler import ROW_KEY, RecordSampler, nearest_unseen, random_order, table_sampler
from nas_harness.tables._surrogate import SurrogateFit, accel_nasbench_surrogate, fit_surrogate, split

__all__ = ["DATA_SHA256", "IMAGENET_VAL_N", "PERF_COLUMNS", "ROW_KEY", "BenchmarkTable", "RecordSampler",
           "SurrogateEvaluator", "SurrogateFit", "SurrogateOptions", "TableEvaluator", "TableOptions",
           "accel_nasbench", "accel_nasbench_space", "accel_nasbench_surrogate", "arch_features", "fit_surrogate",
           "nearest_unseen", "random_order", "record_arch", "records_with", "split", "table_from_records",
           "table_sampler"]

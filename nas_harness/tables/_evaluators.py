"""The ``table`` and ``surrogate`` evaluators (registered with :mod:`nas_harness.evaluators` on import).

``table``: the recorded accuracy of the arch, looked up by canonical string; an arch the table does not hold is
a failed trial saying so (never a substitute).  ``surrogate``: the gradient-boosted surrogate's prediction for any
arch of the table's space.  Both spend no training (``epochs = 0``) and read no proxy data; each trial records
the table's costs of the arch where they exist (``macs_thop``, throughput/latency per platform, and
``ms_per_image_<platform>`` = 1000 / throughput) beside the analytic MACs/params every trial has.  A table study
may minimise one of them (``objective.cost = "table:<column>"``) and searches the table's records only
(:class:`~nas_harness.tables.RecordSampler`, through :func:`table_sampler`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from nas_harness._config import ConfigModel, Int, write_text
from nas_harness.errors import ConfigError, TrialError, os_reason
from nas_harness.evaluators import EvalContext, Evaluator, TrialSpec, register_evaluator
from nas_harness.objectives import TABLE_COSTS
from nas_harness.records import TrialRecord
from nas_harness.tables._data import DATA_SHA256, IMAGENET_VAL_N, accel_nasbench, accel_nasbench_space, check_space
from nas_harness.tables._surrogate import HYPERPARAMETERS, MODEL, accel_nasbench_surrogate


class TableOptions(ConfigModel):
    """``[table]``: which benchmark table gives each trial's accuracy."""

    name: Annotated[Literal["accel_nasbench"], Field(description=(
        "the table: 'accel_nasbench' (5,125 archs of EfficientNet-B0's 7-stage space, ImageNet-1k top-1 after "
        "the benchmark's reduced training; Apache-2.0, Ahmad et al. 2024)"))] = "accel_nasbench"


class SurrogateOptions(ConfigModel):
    """``[surrogate]``: the gradient-boosted surrogate fitted on a benchmark table."""

    name: Annotated[Literal["accel_nasbench"], Field(description="the table the surrogate is fitted on")
                    ] = "accel_nasbench"
    split_seed: Annotated[Int, Field(ge=0, le=2**31 - 1, description=(
        "seed of the 80/10/10 train/validation/test split (the fit is deterministic given it)"))] = 0


#: Record key of each ``objective.cost = "table:<column>"`` -> the table column it comes from.
COST_COLUMNS = {key: cost.split(":", 1)[1] for cost, key in TABLE_COSTS.items()}


def _measured(i: int) -> dict[str, float]:
    """The table's measurements of row ``i`` (none that are missing): ``macs_thop``, each ``throughput_*`` and
    ``latency_*`` as recorded, and ``ms_per_image_<platform>`` = 1000 / throughput (the minimised form a study's
    ``objective.cost = "table:throughput_<platform>"`` uses)."""
    row = accel_nasbench().row(i)
    out = {k: v for k, v in row.items() if k not in ("arch", "val_acc", "params", "macs", "record_ids")
           and v is not None}
    for key, col in COST_COLUMNS.items():
        if key != col and out.get(col):
            out[key] = 1000.0 / out[col]
    return out


def _table_costs(i: int) -> dict[str, Any]:
    row = accel_nasbench().row(i)
    return {**_measured(i), "table_record_ids": ",".join(str(r) for r in row["record_ids"])}


class TableEvaluator(Evaluator):
    """The table's recorded accuracy (the mean where an arch was recorded twice; see :mod:`._data`)."""

    kind = "table"
    uses_data = False
    accuracy_note = "ImageNet-1k top-1 recorded in Accel-NASBench (reduced training proxy)"

    def __init__(self, name: str = "accel_nasbench") -> None:
        self.name = name

    def identity(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "sha256": DATA_SHA256}

    def check(self, ctx: EvalContext) -> None:
        check_space(accel_nasbench(), ctx.space)

    def prepare(self, ctx: EvalContext, log: Callable[[str], None]) -> None:
        self.check(ctx)
        table = accel_nasbench()
        log(f"table: {self.name}, {len(table)} archs; archs outside it are failed trials")

    def known_costs(self, arch: Any) -> dict[str, float]:
        """The table's measurements of ``arch`` (none for an arch it does not hold)."""
        i = accel_nasbench().index(arch)
        return {} if i is None else _measured(i)

    def evaluate(self, spec: TrialSpec, report: Callable[[Any], None] | None = None,
                 checkpoint: Path | None = None) -> TrialRecord:
        table = accel_nasbench()
        i = table.index(spec.arch)
        if i is None:
            raise TrialError(f"arch not in the {self.name} table ({len(table)} archs): a table study can only "
                             "score the table's archs; use [evaluator] kind = 'surrogate' for the whole space")
        return TrialRecord(arch=str(spec.arch), val_acc=float(table.val_acc[i]), val_n=IMAGENET_VAL_N, epochs=0.0,
                           full_budget=True, seed=spec.seed, extra=_table_costs(i))

    def describe(self) -> str:
        return f"table lookup ({self.name})"


class SurrogateEvaluator(Evaluator):
    """The surrogate's predicted accuracy for any arch of the table's space."""

    kind = "surrogate"
    uses_data = False
    accuracy_note = "predicted by a gradient-boosted surrogate of Accel-NASBench (ImageNet-1k top-1)"

    def __init__(self, name: str = "accel_nasbench", split_seed: int = 0) -> None:
        self.name, self.split_seed = name, split_seed

    def identity(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "sha256": DATA_SHA256, "split_seed": self.split_seed,
                "model": MODEL, "hyperparameters": HYPERPARAMETERS}

    def check(self, ctx: EvalContext) -> None:
        if ctx.space is not None:
            space = accel_nasbench_space()
            for st_space, st_table, i in zip(ctx.space.stages, space.stages, range(1, 99)):
                for field in ("kernels", "expands", "se", "repeats"):
                    if not set(getattr(st_space, field)) <= set(getattr(st_table, field)):
                        raise ConfigError(f"space.stages.{i}.{field}: the surrogate covers "
                                          f"{list(getattr(st_table, field))} only (the {self.name} space)")

    def prepare(self, ctx: EvalContext, log: Callable[[str], None]) -> None:
        self.check(ctx)
        fit = accel_nasbench_surrogate(self.split_seed)
        m = fit.metrics
        log(f"surrogate: {MODEL} on {self.name} (split seed {self.split_seed}): held-out Kendall tau "
            f"{m['test_kendall_tau']:.3f} (validation {m['validation_kendall_tau']:.3f}), RMSE "
            f"{100 * m['test_rmse']:.2f} pp")
        if ctx.study_dir is not None:
            try:
                ctx.study_dir.mkdir(parents=True, exist_ok=True)
                write_text(ctx.study_dir / "surrogate.json", json.dumps(fit.summary(), indent=1) + "\n")
            except (OSError, ConfigError) as exc:
                log(f"surrogate: could not write surrogate.json ({os_reason(exc)})")

    def evaluate(self, spec: TrialSpec, report: Callable[[Any], None] | None = None,
                 checkpoint: Path | None = None) -> TrialRecord:
        if spec.arch not in accel_nasbench_space():
            reason = accel_nasbench_space()._why_not_member(spec.arch)
            raise TrialError(f"arch outside the {self.name} space the surrogate covers: {reason}")
        fit = accel_nasbench_surrogate(self.split_seed)
        acc = min(1.0, max(0.0, fit.predict_arch(spec.arch)))
        extra: dict[str, Any] = {"surrogate_test_kendall_tau": fit.metrics["test_kendall_tau"]}
        table = accel_nasbench()
        i = table.index(spec.arch)
        if i is not None:
            extra.update(_table_costs(i))
        return TrialRecord(arch=str(spec.arch), val_acc=acc, val_n=None, epochs=0.0, full_budget=True,
                           seed=spec.seed, extra=extra)

    def describe(self) -> str:
        return f"surrogate of {self.name} (split seed {self.split_seed})"


register_evaluator("table", lambda options, ctx: TableEvaluator(options.name), TableOptions)
register_evaluator("surrogate", lambda options, ctx: SurrogateEvaluator(options.name, options.split_seed),
                   SurrogateOptions)

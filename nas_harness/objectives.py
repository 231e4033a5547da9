"""The study objectives: MnasNet reward, plain accuracy, accuracy under a hard budget, and accuracy-vs-cost Pareto.

The cost is MACs (analytic), parameters, or measured latency (``cost = "latency"``: milliseconds predicted from
the per-device lookup table of :mod:`nas_harness.latency`, before training, with the study's ``[latency]``
settings).  A study on a benchmark table (``[evaluator] kind = "table"``) may instead name one of the table's
measurements, ``cost = "table:<column>"`` (:data:`TABLE_COSTS`): MACs in thop's convention, an accelerator's
measured latency (ms), or its measured throughput, minimised as milliseconds per image (1000 / throughput, so
every cost is "lower is better" and the Pareto front is the same as for maximising throughput).

* ``reward``: maximise ACC x (COST/T)^w with w = alpha if COST <= T else beta (MnasNet, Tan et al. 2019,
  Eq. 2; soft constraint alpha = beta = -0.07, hard alpha = 0, beta = -1); COST is MACs (T = target_macs) or
  latency (T = target_ms), as in MnasNet's own hardware-aware reward.
* ``accuracy``: maximise validation accuracy, nothing else (the cost is only the axis of figures and reports).
* ``budget``: maximise accuracy subject to MACs <= max_macs, params <= max_params and/or latency <=
  max_latency_ms; the constraint values are stored with every trial where Optuna's samplers read them, and an
  over-budget candidate is recognised from the analytic count or the latency table and never trained.
* ``multi``: maximise accuracy, minimise MACs, params or latency; the study's best trials are the Pareto front.

:class:`Objective` is also the validated ``[objective]`` table of a study file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, model_validator

from nas_harness._config import ConfigModel, Num, Rules, bad, inert

# Constraint value given to a trial that never got a cost (failed before counting): clearly infeasible.
_UNKNOWN_COST = 1e9
_EXPONENTS = {"soft": (-0.07, -0.07), "hard": (0.0, -1.0)}
_MAX_COST = 1e15
_MAX_MS = 1e7
#: Accelerators whose throughput (and, for the FPGAs, latency) the Accel-NASBench table measured.
TABLE_PLATFORMS = ("tpuv2", "tpuv3", "a100", "3090", "zcu102", "vck190")
#: ``cost = "table:<column>"`` (evaluator.kind = "table") -> the trial-record key holding it: the table's own
#: MACs (thop's convention), latency in ms, and throughput as ms per image (1000 / images per second).
TABLE_COSTS = {"table:macs_thop": "macs_thop", "table:latency_zcu102": "latency_zcu102",
               "table:latency_vck190": "latency_vck190",
               **{f"table:throughput_{p}": f"ms_per_image_{p}" for p in TABLE_PLATFORMS}}
#: Objective cost -> the trial-record key holding it.
COST_KEYS = {"macs": "macs", "params": "params", "latency": "latency_ms", **TABLE_COSTS}
#: Record keys of the costs measured in milliseconds.
MS_COSTS = frozenset(k for k in COST_KEYS.values() if k not in ("macs", "params", "macs_thop"))


def mnasnet_reward(acc: float, macs: float, target: float, alpha: float = -0.07, beta: float = -0.07) -> float:
    """ACC x (COST/T)^w, w = alpha if COST <= T else beta (MnasNet Eq. 2); COST is MACs or latency."""
    if not (target > 0 and macs is not None and macs > 0):
        raise ValueError(f"mnasnet_reward: cost and target must be > 0, got cost={macs}, target={target}")
    w = alpha if macs <= target else beta
    return float(acc) * (float(macs) / float(target)) ** w


@dataclass(frozen=True)
class BudgetConstraints:
    """Hard budgets as Optuna constraint values: the relative overshoot (cost - budget) / budget of each,
    feasible when <= 0.  Also usable as a ``constraints_func`` (reads the trial's user attributes).
    """

    max_macs: float = 0.0
    max_params: float = 0.0
    max_latency_ms: float = 0.0

    def values(self, macs: float | None, params: float | None, latency_ms: float | None = None) -> list[float]:
        out = []
        for cost, budget in ((macs, self.max_macs), (params, self.max_params), (latency_ms, self.max_latency_ms)):
            if budget:
                out.append(_UNKNOWN_COST if cost is None else (float(cost) - budget) / budget)
        return out

    def __call__(self, trial: Any) -> Sequence[float]:
        attrs = trial.user_attrs
        return self.values(attrs.get("macs"), attrs.get("params"), attrs.get("latency_ms"))

    def over_budget(self, macs: float, params: float, latency_ms: float | None = None) -> bool:
        return any(v > 0 for v in self.values(macs, params, latency_ms))

    @property
    def active(self) -> bool:
        return bool(self.max_macs or self.max_params or self.max_latency_ms)


class Objective(ConfigModel):
    """What a study optimises: the ``[objective]`` table (keys that do not apply to ``kind`` are refused)."""

    kind: Annotated[Literal["reward", "accuracy", "budget", "multi"], Field(description="what the study optimises")
                    ] = "reward"
    target_macs: Annotated[Num, Field(gt=0, le=_MAX_COST,
                                      description="applies to kind = 'reward' with cost = 'macs' only")] = 400e6
    target_ms: Annotated[Num | None, Field(gt=0, le=_MAX_MS, description=(
        "applies to kind = 'reward' with cost = 'latency' only: the latency target T in ms (required there)"))
                         ] = None
    constraint: Annotated[Literal["soft", "hard", "custom"],
                          Field(description="applies to kind = 'reward' only")] = "soft"
    alpha: Annotated[Num, Field(ge=-10, le=10,
                                description="applies to kind = 'reward' with constraint = 'custom' only")] = -0.07
    beta: Annotated[Num, Field(ge=-10, le=10,
                               description="applies to kind = 'reward' with constraint = 'custom' only")] = -0.07
    max_macs: Annotated[Num, Field(ge=0, le=_MAX_COST, description="applies to kind = 'budget' or 'multi' only")
                        ] = 0.0
    max_params: Annotated[Num, Field(ge=0, le=_MAX_COST,
                                     description="applies to kind = 'budget' or 'multi' only")] = 0.0
    max_latency_ms: Annotated[Num, Field(ge=0, le=_MAX_MS, description=(
        "applies to kind = 'budget' or 'multi' only: latency budget in ms, checked from the latency table before "
        "training"))] = 0.0
    cost: Annotated[Literal[tuple(COST_KEYS)], Field(description=(  # type: ignore[valid-type]
        "the cost: reward: what target_macs / target_ms bounds ('macs' or 'latency'); multi: the second objective; "
        "budget and accuracy: the cost axis of figures and reports; 'latency' uses the [latency] settings; "
        "'table:<column>' (evaluator.kind = 'table' only): the table's measured MACs (thop), latency (ms) or "
        "throughput (minimised as ms per image = 1000 / throughput)"))] = "macs"

    _inert: ClassVar[Rules] = inert(
        target_macs=lambda o: o.kind != "reward" or o.cost != "macs",
        target_ms=lambda o: o.kind != "reward" or o.cost != "latency",
        constraint=lambda o: o.kind != "reward",
        alpha=lambda o: o.kind != "reward" or o.constraint != "custom",
        beta=lambda o: o.kind != "reward" or o.constraint != "custom",
        max_macs=lambda o: o.kind in ("reward", "accuracy"),
        max_params=lambda o: o.kind in ("reward", "accuracy"),
        max_latency_ms=lambda o: o.kind in ("reward", "accuracy"),
    )

    @model_validator(mode="after")
    def _budget_needs_a_limit(self) -> Objective:
        if self.kind == "budget" and not (self.max_macs or self.max_params or self.max_latency_ms):
            raise bad("max_macs", "the budget objective needs max_macs, max_params and/or max_latency_ms > 0")
        if self.kind == "reward" and self.cost not in ("macs", "latency"):
            raise bad("cost", f"{self.cost!r} is not a reward cost; allowed with kind = 'reward': 'macs', 'latency'")
        if self.kind == "reward" and self.cost == "latency" and self.target_ms is None:
            raise bad("target_ms", "required with kind = 'reward' and cost = 'latency': the latency target T in ms "
                                   "(MnasNet used 75 ms on a Pixel 1)")
        return self

    @classmethod
    def from_config(cls, obj: Mapping[str, Any] | Objective) -> Objective:
        """The objective of an ``[objective]`` table (or the object itself)."""
        return obj if isinstance(obj, Objective) else cls.from_dict(obj, "objective")

    @property
    def exponents(self) -> tuple[float, float]:
        """(alpha, beta) of the reward: fixed by ``constraint`` unless it is 'custom'."""
        return _EXPONENTS.get(self.constraint, (self.alpha, self.beta))

    @property
    def budget(self) -> BudgetConstraints:
        if self.kind in ("reward", "accuracy"):
            return BudgetConstraints()  # the reward is the constraint / there is none; nothing is rejected
        return BudgetConstraints(self.max_macs, self.max_params, self.max_latency_ms)

    @property
    def cost_key(self) -> str:
        """The trial-record key of the cost: ``macs``, ``params``, ``latency_ms`` or a table's (:data:`TABLE_COSTS`)."""
        return COST_KEYS[self.cost]

    @property
    def table_cost(self) -> bool:
        """Whether the cost is a benchmark table's measurement (``table:<column>``)."""
        return self.cost in TABLE_COSTS

    @property
    def uses_latency(self) -> bool:
        """Whether trials need a latency prediction (the cost, or a latency budget)."""
        return self.cost == "latency" or bool(self.max_latency_ms)

    @property
    def target(self) -> float:
        """The reward's target T, in the cost's unit (MACs or ms)."""
        return float(self.target_ms) if self.cost == "latency" and self.target_ms else self.target_macs

    @property
    def metric_names(self) -> list[str]:
        """Names of the objective values, in order (stored as the study's Optuna metric names)."""
        if self.kind == "reward":
            return ["reward"]
        if self.kind in ("budget", "accuracy"):
            return ["val_acc"]
        return ["val_acc", self.cost_key]

    @property
    def directions(self) -> list[str]:
        return ["maximize"] if self.kind != "multi" else ["maximize", "minimize"]

    @property
    def modes(self) -> list[str]:
        """Ray Tune spelling of :attr:`directions`."""
        return ["max" if d == "maximize" else "min" for d in self.directions]

    @property
    def constraints_func(self) -> BudgetConstraints | None:
        return self.budget if self.budget.active else None

    def reward(self, acc: float, cost: float) -> float:
        """The MnasNet reward of ``acc`` at ``cost`` (MACs, or ms when the cost is latency)."""
        return mnasnet_reward(acc, cost, self.target, *self.exponents)

    def cost_of(self, metrics: Mapping[str, Any]) -> float:
        """The cost value of a trial's metrics (a missing latency is a clear error, not a KeyError)."""
        value = metrics.get(self.cost_key)
        if value is None:
            raise ValueError(f"objective: the trial has no {self.cost_key} (cost = {self.cost!r})")
        return float(value)

    def values(self, metrics: Mapping[str, Any], acc: float | None = None) -> list[float]:
        """Objective values of a trial from its metrics (``acc`` overrides val_acc, e.g. mid-training)."""
        acc = float(metrics["val_acc"] if acc is None else acc)
        if self.kind == "reward":
            return [self.reward(acc, self.cost_of(metrics))]
        if self.kind in ("budget", "accuracy"):
            return [acc]
        return [acc, self.cost_of(metrics)]

    def intermediate(self, metrics: Mapping[str, Any], acc: float) -> float:
        """Single value reported per epoch for pruning (single-objective studies only)."""
        return self.values(metrics, acc)[0]

    def rejected_values(self, metrics: Mapping[str, Any]) -> list[float]:
        """Values recorded for an over-budget candidate that is not trained (infeasible anyway): zero
        accuracy with its true cost, so nothing downstream mistakes it for a cheap Pareto point."""
        return [0.0] if self.kind != "multi" else [0.0, self.cost_of(metrics)]

    def describe(self) -> str:
        if self.kind == "reward":
            alpha, beta = self.exponents
            name, unit = ("latency", " ms") if self.cost == "latency" else ("MACs", "")
            w = f"{alpha:g}" if alpha == beta else f"{alpha:g} if {name} <= T else {beta:g}"
            return f"reward = ACC x ({name}/{self.target:.3g}{unit})^w, w = {w}"
        if self.kind == "accuracy":
            return "maximise val_acc"
        b = self.budget
        lim = ", ".join(x for x in (f"MACs <= {b.max_macs:.3g}" if b.max_macs else "",
                                    f"params <= {b.max_params:.3g}" if b.max_params else "",
                                    f"latency <= {b.max_latency_ms:.3g} ms" if b.max_latency_ms else "") if x)
        if self.kind == "budget":
            return f"maximise val_acc subject to {lim}"
        cost = self.cost if not self.table_cost or self.cost_key == self.cost[6:] else (
            f"{self.cost_key} (1000 / {self.cost[6:]})")
        return f"maximise val_acc, minimise {cost}" + (f" subject to {lim}" if lim else "")

"""The three study objectives: MnasNet reward, accuracy under a hard budget, and accuracy-vs-cost Pareto.

* ``reward``: maximise ACC x (MACs/T)^w with w = alpha if MACs <= T else beta (MnasNet, Tan et al. 2019,
  Eq. 2; soft constraint alpha = beta = -0.07, hard alpha = 0, beta = -1).
* ``budget``: maximise accuracy subject to MACs <= max_macs (and/or params <= max_params); the constraint
  values are stored with every trial where Optuna's samplers read them, and an over-budget candidate is
  recognised from the analytic count and never trained.
* ``multi``: maximise accuracy, minimise MACs (or params); the study's best trials are the Pareto front.

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


def mnasnet_reward(acc: float, macs: float, target: float, alpha: float = -0.07, beta: float = -0.07) -> float:
    """ACC x (MACs/T)^w, w = alpha if MACs <= T else beta (MnasNet Eq. 2)."""
    if not (target > 0 and macs > 0):
        raise ValueError(f"mnasnet_reward: macs and target must be > 0, got macs={macs}, target={target}")
    w = alpha if macs <= target else beta
    return float(acc) * (float(macs) / float(target)) ** w


@dataclass(frozen=True)
class BudgetConstraints:
    """Hard budgets as Optuna constraint values: the relative overshoot (cost - budget) / budget of each,
    feasible when <= 0.  Also usable as a ``constraints_func`` (reads the trial's user attributes).
    """

    max_macs: float = 0.0
    max_params: float = 0.0

    def values(self, macs: float | None, params: float | None) -> list[float]:
        out = []
        for cost, budget in ((macs, self.max_macs), (params, self.max_params)):
            if budget:
                out.append(_UNKNOWN_COST if cost is None else (float(cost) - budget) / budget)
        return out

    def __call__(self, trial: Any) -> Sequence[float]:
        attrs = trial.user_attrs
        return self.values(attrs.get("macs"), attrs.get("params"))

    def over_budget(self, macs: float, params: float) -> bool:
        return any(v > 0 for v in self.values(macs, params))

    @property
    def active(self) -> bool:
        return bool(self.max_macs or self.max_params)


class Objective(ConfigModel):
    """What a study optimises: the ``[objective]`` table (keys that do not apply to ``kind`` are refused)."""

    kind: Annotated[Literal["reward", "budget", "multi"], Field(description="what the study optimises")] = "reward"
    target_macs: Annotated[Num, Field(gt=0, le=_MAX_COST, description="applies to kind = 'reward' only")] = 400e6
    constraint: Annotated[Literal["soft", "hard", "custom"],
                          Field(description="applies to kind = 'reward' only")] = "soft"
    alpha: Annotated[Num, Field(ge=-10, le=10,
                                description="applies to kind = 'reward' with constraint = 'custom' only")] = -0.07
    beta: Annotated[Num, Field(ge=-10, le=10,
                               description="applies to kind = 'reward' with constraint = 'custom' only")] = -0.07
    max_macs: Annotated[Num, Field(ge=0, le=_MAX_COST, description="applies to kind = 'budget' or 'multi' only")] = 0.0
    max_params: Annotated[Num, Field(ge=0, le=_MAX_COST,
                                     description="applies to kind = 'budget' or 'multi' only")] = 0.0
    cost: Annotated[Literal["macs", "params"], Field(description="applies to kind = 'multi' only")] = "macs"

    _inert: ClassVar[Rules] = inert(
        target_macs=lambda o: o.kind != "reward",
        constraint=lambda o: o.kind != "reward",
        alpha=lambda o: o.kind != "reward" or o.constraint != "custom",
        beta=lambda o: o.kind != "reward" or o.constraint != "custom",
        max_macs=lambda o: o.kind == "reward",
        max_params=lambda o: o.kind == "reward",
        cost=lambda o: o.kind != "multi",
    )

    @model_validator(mode="after")
    def _budget_needs_a_limit(self) -> Objective:
        if self.kind == "budget" and not (self.max_macs or self.max_params):
            raise bad("max_macs", "the budget objective needs max_macs and/or max_params > 0")
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
        if self.kind == "reward":
            return BudgetConstraints()  # the reward is the constraint; nothing is rejected
        return BudgetConstraints(self.max_macs, self.max_params)

    @property
    def metric_names(self) -> list[str]:
        """Names of the objective values, in order (stored as the study's Optuna metric names)."""
        if self.kind == "reward":
            return ["reward"]
        if self.kind == "budget":
            return ["val_acc"]
        return ["val_acc", self.cost]

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

    def reward(self, acc: float, macs: float) -> float:
        return mnasnet_reward(acc, macs, self.target_macs, *self.exponents)

    def values(self, metrics: Mapping[str, Any], acc: float | None = None) -> list[float]:
        """Objective values of a trial from its metrics (``acc`` overrides val_acc, e.g. mid-training)."""
        acc = float(metrics["val_acc"] if acc is None else acc)
        if self.kind == "reward":
            return [self.reward(acc, metrics["macs"])]
        if self.kind == "budget":
            return [acc]
        return [acc, float(metrics[self.cost])]

    def intermediate(self, metrics: Mapping[str, Any], acc: float) -> float:
        """Single value reported per epoch for pruning (single-objective studies only)."""
        return self.values(metrics, acc)[0]

    def rejected_values(self, metrics: Mapping[str, Any]) -> list[float]:
        """Values recorded for an over-budget candidate that is not trained (infeasible anyway): zero
        accuracy with its true cost, so nothing downstream mistakes it for a cheap Pareto point."""
        return [0.0] if self.kind != "multi" else [0.0, float(metrics[self.cost])]

    def describe(self) -> str:
        if self.kind == "reward":
            alpha, beta = self.exponents
            return f"reward = ACC x (MACs/{self.target_macs:.3g})^w, w = {alpha:g} if MACs <= T else {beta:g}"
        b = self.budget
        lim = ", ".join(x for x in (f"MACs <= {b.max_macs:.3g}" if b.max_macs else "",
                                    f"params <= {b.max_params:.3g}" if b.max_params else "") if x)
        if self.kind == "budget":
            return f"maximise val_acc subject to {lim}"
        return f"maximise val_acc, minimise {self.cost}" + (f" subject to {lim}" if lim else "")

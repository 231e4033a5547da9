"""The three study objectives: MnasNet reward, accuracy under a hard budget, and accuracy-vs-cost Pareto.

* ``reward``: maximise ACC x (MACs/T)^w with w = alpha if MACs <= T else beta (MnasNet, Tan et al. 2019;
  soft constraint alpha = beta = -0.07, hard alpha = 0, beta = -1).
* ``budget``: maximise accuracy subject to MACs <= max_macs (and/or params <= max_params) through Optuna's
  ``constraints_func``; an over-budget candidate is recognised from the analytic count and never trained.
* ``multi``: maximise accuracy, minimise MACs (or params); the study's best trials are the Pareto front.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Constraint value given to a trial that never got a cost (failed before counting): clearly infeasible.
_UNKNOWN_COST = 1e9


def mnasnet_reward(acc: float, macs: float, target: float, alpha: float = -0.07, beta: float = -0.07) -> float:
    """ACC x (MACs/T)^w, w = alpha if MACs <= T else beta."""
    if target <= 0 or macs <= 0:
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


@dataclass(frozen=True)
class Objective:
    """What a study optimises, built from the validated ``[objective]`` table."""

    kind: str  # 'reward' | 'budget' | 'multi'
    target_macs: float = 400e6
    alpha: float = -0.07
    beta: float = -0.07
    cost: str = "macs"
    budget: BudgetConstraints = BudgetConstraints()

    @classmethod
    def from_config(cls, obj: Mapping[str, Any]) -> Objective:
        budget = BudgetConstraints(float(obj.get("max_macs", 0.0)), float(obj.get("max_params", 0.0)))
        if obj["kind"] == "reward":
            budget = BudgetConstraints()  # the reward is the constraint; nothing is rejected
        return cls(kind=obj["kind"], target_macs=float(obj.get("target_macs", 400e6)),
                   alpha=float(obj.get("alpha", -0.07)), beta=float(obj.get("beta", -0.07)),
                   cost=obj.get("cost", "macs"), budget=budget)

    @property
    def metric_names(self) -> list[str]:
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
        return mnasnet_reward(acc, macs, self.target_macs, self.alpha, self.beta)

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
            return (f"reward = ACC x (MACs/{self.target_macs:.3g})^w, w = {self.alpha:g} if MACs <= T "
                    f"else {self.beta:g}")
        b = self.budget
        lim = ", ".join(x for x in (f"MACs <= {b.max_macs:.3g}" if b.max_macs else "",
                                    f"params <= {b.max_params:.3g}" if b.max_params else "") if x)
        if self.kind == "budget":
            return f"maximise val_acc subject to {lim}"
        return f"maximise val_acc, minimise {self.cost}" + (f" subject to {lim}" if lim else "")

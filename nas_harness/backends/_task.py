"""What one study trial does, independent of who schedules it (local Optuna loop or a Ray Tune worker).

:class:`StudyTask` is picklable (it is shipped to Ray workers) and turns an arch into an outcome:
over-budget candidates are rejected from the analytic count before any training, everything else goes
through :func:`nas_harness.trial.run_trial`; every outcome carries the user attributes of the contract.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas_harness.objectives import Objective
from nas_harness.trial import ResultCache, TrialSpec, analytic_cost, library_versions, run_trial

# Per-process result caches, keyed by folder, so a Ray actor reused for many trials keeps its cache.
_CACHES: dict[str | None, ResultCache] = {}


class TrialStopped(Exception):
    """Raised from an epoch callback to stop a trial early (pruned by Optuna / stopped by the scheduler)."""


@dataclass
class Outcome:
    """Result of one study trial: state ('complete' | 'pruned' | 'fail'), objective values, user attrs."""

    state: str
    values: list[float] | None
    attrs: dict[str, Any]
    constraints: list[float] | None = None


@dataclass
class StudyTask:
    """Everything a worker needs to evaluate candidates of one study."""

    space: Any  # nas_harness.space.SearchSpace
    data: Any  # ProxyConfig
    train: Any  # TrainConfig
    objective: Objective
    seed: int = 0
    stem_stride: int | None = None
    macs_resolution: int = 224
    macs_num_classes: int = 1000
    evaluate_test: bool = False
    cache_dir: str | None = None
    backend: str = "local"

    def spec(self, arch: Any) -> TrialSpec:
        return TrialSpec(arch=arch, data=self.data, train=self.train, seed=self.seed, stem_stride=self.stem_stride,
                         macs_resolution=self.macs_resolution, macs_num_classes=self.macs_num_classes,
                         evaluate_test=self.evaluate_test)

    def _cache(self) -> ResultCache | None:
        if self.cache_dir is None:
            return None
        if self.cache_dir not in _CACHES:
            _CACHES[self.cache_dir] = ResultCache(Path(self.cache_dir))
        return _CACHES[self.cache_dir]

    def base_attrs(self, arch: Any) -> dict[str, Any]:
        """Attributes known before training (analytic cost, budget, seed, versions)."""
        macs, params = analytic_cost(self.spec(arch))
        return {"arch": str(arch), "macs": macs, "params": params, "macs_resolution": self.macs_resolution,
                "seed": self.seed, "epochs": 0.0, "epochs_planned": _planned(self.train, self.data),
                "full_budget": False, "cached": False, "versions": library_versions(), "backend": self.backend}

    def evaluate(self, arch: Any, on_epoch: Callable[[float, int, dict[str, Any]], None] | None = None) -> Outcome:
        """Run one candidate.  ``on_epoch(objective_value, epoch, attrs_so_far)`` may raise
        :class:`TrialStopped` to stop early (→ state 'pruned' with the epochs actually trained)."""
        t0 = time.perf_counter()
        try:
            attrs = self.base_attrs(arch)
        except Exception as exc:  # an arch the MAC counter cannot handle is a failed trial, not a crash
            return Outcome("fail", None, {"arch": str(arch), "fail_reason": _reason(exc)})
        obj = self.objective
        cons = obj.budget.values(attrs["macs"], attrs["params"]) if obj.budget.active else None
        if cons is not None and any(c > 0 for c in cons):
            attrs.update(rejected="over_budget", val_acc=0.0, wall_time_s=time.perf_counter() - t0)
            return Outcome("complete", obj.rejected_values(attrs), attrs, cons)

        progress: dict[str, Any] = {"best": 0.0, "last": 0.0, "epochs": 0}

        def report(ep: Any) -> None:
            acc = float(ep.val_acc)
            progress.update(best=max(progress["best"], acc), last=acc, epochs=ep.epoch)
            if on_epoch is not None:
                live = dict(attrs, val_acc=progress["best"], val_acc_final=acc, epochs=float(ep.epoch),
                            wall_time_s=time.perf_counter() - t0)
                if obj.kind == "reward":
                    live["reward"] = obj.reward(progress["best"], attrs["macs"])
                on_epoch(obj.intermediate(attrs, acc), int(ep.epoch), live)

        try:
            metrics = run_trial(self.spec(arch), report=report, cache=self._cache())
        except TrialStopped:
            attrs.update(val_acc=progress["best"], val_acc_final=progress["last"], epochs=float(progress["epochs"]),
                         full_budget=False, wall_time_s=time.perf_counter() - t0)
            if obj.kind == "reward":
                attrs["reward"] = obj.reward(progress["best"], attrs["macs"])
            return Outcome("pruned", None, attrs, cons)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # TrialError (NaN, OOM) and unexpected errors alike: FAIL, the study goes on
            attrs.update(fail_reason=_reason(exc), epochs=float(progress["epochs"]),
                         wall_time_s=time.perf_counter() - t0)
            return Outcome("fail", None, attrs)
        attrs.update({k: v for k, v in metrics.items() if k in _ATTR_KEYS})
        values = obj.values(attrs)
        if obj.kind == "reward":
            attrs["reward"] = values[0]
        return Outcome("complete", values, attrs, cons)


_ATTR_KEYS = ("arch", "macs", "params", "val_acc", "val_acc_final", "test_acc", "epochs", "epochs_planned",
              "full_budget", "wall_time_s", "train_time_s", "train_wall_s", "images_per_s", "device", "seed",
              "versions", "cached", "macs_resolution")


def _planned(train: Any, data: Any) -> float:
    from nas_harness.data import load_proxy
    from nas_harness.trial import planned_epochs

    if train.epochs is not None:
        return float(train.epochs)
    return planned_epochs(train, len(load_proxy(data).train_y))


def _reason(exc: BaseException) -> str:
    msg = " ".join(str(exc).split()) or traceback.format_exception_only(type(exc), exc)[-1].strip()
    return f"{type(exc).__name__}: {msg}"[:500]


"""What one study trial does, independent of who schedules it (local loop or a Ray Tune worker).

:class:`StudyTask` is picklable (it is shipped to Ray workers) and turns an arch into an
:class:`~nas_harness.records.Outcome`: over-budget candidates are rejected from the analytic count (and the
latency table, when latency is a cost or a budget) before any training (``rejected = "over_budget"``),
everything else goes through :func:`nas_harness.trial.run_trial` with the study's evaluator.  The costs the
evaluator knows before evaluating (a benchmark table's measurements) are part of the record from the start.
"""

from __future__ import annotations

import socket
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas_harness.errors import raise_if_interrupted
from nas_harness.evaluators import Evaluator
from nas_harness.objectives import Objective
from nas_harness.records import REJECTED_OVER_BUDGET, Outcome, TrialRecord
from nas_harness.trial import ResultCache, TrialSettings, TrialSpec, analytic_cost, library_versions, run_trial

# Per-process result caches, keyed by folder, so a Ray actor reused for many trials keeps its cache.
_CACHES: dict[str | None, ResultCache] = {}


class TrialStopped(Exception):
    """Raised from an epoch callback to stop a trial early (pruned by Optuna / stopped by a scheduler)."""

    def __init__(self, by: str = "pruner") -> None:
        super().__init__(f"stopped by the {by}")
        self.by = by


@dataclass
class StudyTask:
    """Everything a worker needs to evaluate candidates of one study."""

    space: Any  # nas_harness.space.SearchSpace
    data: Any  # ProxyConfig
    train: Any  # TrainConfig (threads fixed by the study)
    objective: Objective
    trial: TrialSettings
    seed: int = 0
    cache_dir: str | None = None
    backend: str = "local"
    latency: Any = None  # nas_harness.latency.LatencySettings: predict latency_ms for every trial
    evaluator: Evaluator | None = None  # None: train from scratch
    sampler_offset: int = 0  # what this run adds to the study's seed for its samplers (see study.search)

    def predict_latency(self, arch: Any) -> float:
        """Predicted latency (ms) of ``arch`` from the table, measuring missing entries in this worker first (and
        fitting the per-network overhead on a few archs of the space when the table has none yet)."""
        from nas_harness.latency import predictor_for

        predictor = predictor_for(self.latency)
        predictor.ensure_fit(self.space.sample, seed=self.seed)
        return float(predictor.predict(arch).total_ms)

    def propose(self, trial: Any) -> Any:
        """The candidate of an Optuna trial: the arch its parameters choose (queued trials: their fixed ones)."""
        return self.space.suggest(trial)

    def arch_of(self, candidate: Any) -> Any:
        """The arch a candidate trains (a plain study's candidate is its arch)."""
        return candidate

    def spec(self, arch: Any) -> TrialSpec:
        t = self.trial
        return TrialSpec(arch=arch, data=self.data, train=self.train, seed=self.seed, stem_stride=t.stem_stride,
                         macs_resolution=t.macs_resolution, macs_num_classes=t.macs_num_classes or 1000,
                         evaluate_test=t.evaluate_test, evaluator=self.evaluator)

    def params_of_arch(self, arch: str) -> dict[str, Any]:
        """Optuna parameters of a recorded arch string (to queue an interrupted trial again)."""
        from nas_harness.arch import parse_arch

        return self.space.params_of(parse_arch(arch))

    def _cache(self) -> ResultCache | None:
        if self.cache_dir is None:
            return None
        if self.cache_dir not in _CACHES:
            _CACHES[self.cache_dir] = ResultCache(Path(self.cache_dir))
        return _CACHES[self.cache_dir]

    def base_record(self, arch: Any) -> TrialRecord:
        """What is known before training (analytic cost, predicted latency, budget, seed, versions)."""
        macs, params = analytic_cost(self.spec(arch))
        evaluator = self.spec(arch).evaluator_or_default
        planned = _planned(self.train, self.data) if evaluator.kind == "train" else None
        rec = TrialRecord(arch=str(arch), macs=macs, params=params, macs_resolution=self.trial.macs_resolution,
                          seed=self.seed, host=socket.gethostname(), epochs=0.0,
                          epochs_planned=planned, full_budget=False, cached=False,
                          versions=library_versions(), backend=self.backend, evaluator=evaluator.kind,
                          evaluator_id=evaluator.fingerprint,
                          threads=self.train.threads if isinstance(self.train.threads, int) else None)
        known = evaluator.known_costs(arch)  # e.g. a benchmark table's measured latency of the arch
        if known:
            rec = rec.with_extra(**known)
        if self.latency is not None:
            from nas_harness.latency import predictor_for

            rec = rec.replace(latency_ms=self.predict_latency(arch),
                              latency_device=predictor_for(self.latency).fingerprint.id)
        return rec

    def evaluate(self, arch: Any, on_epoch: Callable[[float, int, TrialRecord], None] | None = None) -> Outcome:
        """Run one candidate.  ``on_epoch(objective_value, epoch, record_so_far)`` may raise
        :class:`TrialStopped` to stop early (state 'pruned', with the epochs actually trained)."""
        t0 = time.perf_counter()
        try:
            rec = self.base_record(arch)
        except Exception as exc:  # an arch the MAC counter cannot handle is a failed trial, not a crash
            return Outcome("fail", None, TrialRecord(arch=str(arch), fail_reason=reason(exc)))
        obj = self.objective
        cons = obj.budget.values(rec.macs, rec.params, rec.latency_ms) if obj.budget.active else None
        if cons is not None and any(c > 0 for c in cons):
            rec = rec.replace(rejected=REJECTED_OVER_BUDGET, wall_time_s=time.perf_counter() - t0)
            try:
                return Outcome("complete", obj.rejected_values(rec.to_attrs()), rec, cons)
            except ValueError as exc:  # a cost only an evaluation gives (an arch the table lacks): no values
                return Outcome("fail", None, rec.replace(rejected=None, fail_reason=f"over budget, and {exc}"))

        progress: dict[str, Any] = {"best": 0.0, "last": 0.0, "epochs": 0}

        def report(ep: Any) -> None:
            raise_if_interrupted()
            acc = float(ep.val_acc)
            progress.update(best=max(progress["best"], acc), last=acc, epochs=ep.epoch)
            if on_epoch is not None:
                live = rec.replace(val_acc=progress["best"], val_acc_final=acc, epochs=float(ep.epoch),
                                   wall_time_s=time.perf_counter() - t0)
                if obj.kind == "reward":
                    live = live.replace(reward=obj.reward(progress["best"], obj.cost_of(rec.to_attrs())))
                on_epoch(obj.intermediate(live.to_attrs(), acc), int(ep.epoch), live)

        try:
            result = run_trial(self.spec(arch), report=report, cache=self._cache())
        except TrialStopped as stop:
            rec = rec.replace(val_acc=progress["best"], val_acc_final=progress["last"],
                              epochs=float(progress["epochs"]), full_budget=False, stopped_by=stop.by,
                              wall_time_s=time.perf_counter() - t0)
            if obj.kind == "reward":
                rec = rec.replace(reward=obj.reward(progress["best"], obj.cost_of(rec.to_attrs())))
            return Outcome("pruned", None, rec, cons)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # TrialError (NaN, OOM) and unexpected errors alike: FAIL, the study goes on
            rec = rec.replace(fail_reason=reason(exc), epochs=float(progress["epochs"]),
                              wall_time_s=time.perf_counter() - t0)
            return Outcome("fail", None, rec)
        rec = result.replace(backend=self.backend, macs_resolution=self.trial.macs_resolution, host=rec.host,
                             latency_ms=rec.latency_ms, latency_device=rec.latency_device)
        try:
            values = obj.values(rec.to_attrs())
        except ValueError as exc:  # the evaluation gave no value of the cost (a table without this measurement)
            return Outcome("fail", None, rec.replace(fail_reason=reason(exc)))
        if obj.kind == "reward":
            rec = rec.replace(reward=values[0])
        return Outcome("complete", values, rec, cons)


def _planned(train: Any, data: Any) -> float:
    from nas_harness.data import load_proxy

    if train.epochs is not None:
        return float(train.epochs)
    return float(train.planned_epochs(len(load_proxy(data).train_y)))


def reason(exc: BaseException) -> str:
    """'Type: message' of an exception, on one line (at most 500 characters)."""
    msg = " ".join(str(exc).split()) or traceback.format_exception_only(type(exc), exc)[-1].strip()
    return f"{type(exc).__name__}: {msg}"[:500]

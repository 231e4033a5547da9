"""Run every (variant, seed) pair of an ablation, durably, through the shared trial/backends machinery.

Storage: an Optuna study in SQLite (``results/<name>/ablation.db`` by default) holding one trial per finished
(variant, seed) run -- a :class:`~nas_harness.evaluation.store.JobStore`, the same durable job list that
``nas-harness confirm`` and ``fidelity`` use (one transaction per finished run, so a SIGKILL leaves the whole
record or nothing; per-epoch checkpoints under ``<results>/<name>/checkpoints/`` so a killed run resumes
mid-training; a changed recipe or a variant that now means another arch is refused).  Trials carry the
:class:`~nas_harness.records.TrialRecord` attributes plus ``variant`` and ``seed``.

Jobs are executed by :func:`nas_harness.backends.run_jobs` (local: in this process, one after another; Ray:
one task per job), which calls :func:`nas_harness.trial.run_trial` -- the same trial code as the search.
A failed run (NaN loss, OOM, any exception) is stored as a FAIL trial with its reason; the others go on.
Failed pairs are retried on a later invocation only with ``retry_failed=True``.

With a ``[supernet]`` table every variant the supernet holds is also scored with its inherited weights
(:mod:`nas_harness.ablation.supernet`; study ``<name>-supernet-<supernet id>`` in the same storage).

With a ``[compare_budget]`` table the same variants also run at a second budget (their own store,
``<name>-budget2``, in the same storage), and the report says whether the two budgets rank the variants alike.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nas_harness.backends.settings import fixed_jobs_threads, stored_settings
from nas_harness.errors import ConfigError
from nas_harness.evaluation.store import JobStore, StoredRun, run_stored_jobs
from nas_harness.records import TrialRecord

from .config import AblationConfig

__all__ = ["AblationRun", "AblationStore", "RunRecord", "load_records", "plan_jobs", "run_ablation"]


@dataclass(frozen=True)
class RunRecord(StoredRun):
    """One stored (variant, seed) run: ``state`` is 'ok' or 'failed' (with ``error``); ``group`` is the
    variant."""

    @classmethod
    def of(cls, run: StoredRun) -> RunRecord:
        return run if isinstance(run, RunRecord) else cls(run.group, run.seed, run.state, run.metrics, run.error)

    @property
    def variant(self) -> str:
        return self.group

    def to_row(self) -> dict[str, Any]:
        """Flat dict (for the per-run CSV and for :func:`~nas_harness.ablation.stats.variant_table`)."""
        m = self.metrics
        row: dict[str, Any] = {"variant": self.variant, "seed": self.seed, "state": self.state}
        for k in ("test_acc", "val_acc", "val_acc_final", "params", "macs", "macs_resolution", "epochs",
                  "train_time_s", "wall_time_s", "images_per_s", "device", "arch"):
            row[k] = m.get(k)
        row["error"] = self.error
        row["versions"] = json.dumps(m.get("versions"), sort_keys=True) if m.get("versions") else None
        return row


class AblationStore(JobStore):
    """The durable record of an ablation: a :class:`~nas_harness.evaluation.store.JobStore` whose groups are
    the variants (user attribute ``variant``) and whose trial value is the test accuracy (else validation)."""

    def __init__(self, url: str, name: str) -> None:
        super().__init__(url, name, group_attr="variant", value_keys=("test_acc", "val_acc"))

    def bind(self, cfg: AblationConfig) -> Any:  # type: ignore[override]
        """Check that stored runs were made with ``cfg``'s recipe and variant archs; record them if new.

        Runs made with another recipe (data, training budget and thread count, trial settings) or a variant
        name that now means another arch are not comparable, so that is an error rather than a silent mix.
        Returns the training recipe to use: ``cfg.train`` with the thread count fixed for this ablation.
        """
        stored = self.study.user_attrs.get("recipe")
        threads = cfg.train.threads
        if threads is None:
            stored_threads = ((stored or {}).get("train") or {}).get("threads") if isinstance(stored, dict) else None
            threads = stored_threads if stored_threads is not None else fixed_jobs_threads(cfg)
        train = cfg.train.replace(threads=threads)
        try:
            super().bind(cfg.replace_train(train).recipe(), {v: str(a) for v, a in cfg.archs.items()},
                         kind="ablation", attrs={"config": stored_settings(cfg)}, what="runs of ablation",
                         data=cfg.data)
        except ConfigError as exc:
            msg = str(exc)
            raise ConfigError(msg.replace("variant ", "variants: ", 1) if msg.startswith("variant ") else msg) from None
        return train

    def records(self) -> dict[tuple[str, int], RunRecord]:  # type: ignore[override]
        """Latest record per (variant, seed); a completed run always wins over a failed one."""
        return {k: RunRecord.of(r) for k, r in super().records().items()}

    def add(self, variant: str, seed: int, record: TrialRecord | None, error: str | None,  # type: ignore[override]
            arch: str | None = None, **extra: Any) -> RunRecord:
        """Store one finished run atomically (one transaction) through :func:`nas_harness.records.add`."""
        return RunRecord.of(super().add(variant, seed, record, error, arch, **extra))




def plan_jobs(cfg: AblationConfig) -> list[tuple[str, int]]:
    """All (variant, seed) pairs, seed-major: an interrupted ablation has whole seeds for paired Δ."""
    return [(v, s) for s in cfg.seeds for v in cfg.variants]


@dataclass
class AblationRun:
    """What :func:`run_ablation` did: every stored record of the planned pairs and what ran now."""

    config: AblationConfig
    records: list[RunRecord]
    ran: list[tuple[str, int]]
    skipped: list[tuple[str, int]]
    wall_s: float
    supernet: list[RunRecord] = dataclasses.field(default_factory=list)  # the supernet's scores ([supernet])

    @property
    def failed(self) -> list[RunRecord]:
        return [r for r in self.records if r.state != "ok"]


def _specs(cfg: AblationConfig, todo: list[tuple[str, int]], train: Any) -> list[Any]:
    from nas_harness.backends import Job
    from nas_harness.data import load_proxy
    from nas_harness.trial import TrialSpec

    t = cfg.trial
    num_classes = t.macs_num_classes or load_proxy(cfg.data).num_classes
    jobs = []
    for v, s in todo:
        spec = TrialSpec(arch=cfg.archs[v], data=cfg.data, train=train.replace(seed=s), seed=s,
                         stem_stride=t.stem_stride, macs_resolution=t.macs_resolution,
                         macs_num_classes=num_classes, evaluate_test=t.evaluate_test)
        jobs.append(Job(key=f"{v}/seed{s}", spec=spec))
    return jobs


def run_ablation(
    cfg: AblationConfig,
    *,
    retry_failed: bool = False,
    progress: bool = True,
    on_record: Callable[[RunRecord], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> AblationRun:
    """Run the pairs of ``cfg`` not yet stored; return all stored records of the planned pairs.

    ``on_record`` is called in this process after each run is durably stored (tests use it to simulate
    an interruption).  ``KeyboardInterrupt`` propagates; everything finished before it is kept.
    """
    from nas_harness.backends.resources import check_resources
    from nas_harness.data import load_proxy
    from nas_harness.records import check_writable

    say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    t0 = time.perf_counter()
    load_proxy(cfg.data)  # a missing data set is one line (exit 2) before anything is written
    check_writable(cfg.storage_url)
    check_resources(cfg)
    store = AblationStore(cfg.storage_url, cfg.name)
    train = store.bind(cfg)
    plan = plan_jobs(cfg)
    done = store.records()
    n_stored = sum(1 for p in plan if p in done and (done[p].state == "ok" or not retry_failed))
    say(f"ablation {cfg.name}: {len(cfg.variants)} variants x {len(cfg.seeds)} seeds = {len(plan)} runs; "
        f"{n_stored} already stored, {len(plan) - n_stored} to run ({cfg.run.backend} backend, {train.threads} "
        f"thread(s) per run); storage {store.path}")

    def describe(run: StoredRun) -> str:
        m = run.metrics
        if run.state != "ok":
            return f"{run.group} seed {run.seed}: FAILED: {run.error}"
        return (f"{run.group} seed {run.seed}: test {m.get('test_acc', float('nan')):.4f} "
                f"val {m.get('val_acc', float('nan')):.4f} ({m.get('train_time_s', 0.0):.0f} s train)")

    epochs = cfg.train.epochs
    out = run_stored_jobs(
        store, plan, lambda todo: _specs(cfg, todo, train), backend=cfg.run.backend, ray=cfg.ray,
        retry_failed=retry_failed, progress=progress, desc=cfg.name, checkpoint_dir=cfg.out_dir / "checkpoints",
        budget=f"/{epochs:g}" if epochs is not None else "", describe=describe,
        on_record=(lambda run: on_record(RunRecord.of(run))) if on_record is not None else None, log=say,
        workers=cfg.run.workers)
    records = [RunRecord.of(r) for r in out.runs]
    scores: list[RunRecord] = []
    if cfg.supernet is not None:  # after the from-scratch runs: the supernet's scores sit beside them
        from .supernet import run_supernet_scores

        scores = run_supernet_scores(cfg, train, retry_failed=retry_failed, progress=progress, log=say)
    return AblationRun(cfg, records, out.ran, out.skipped, time.perf_counter() - t0, scores)


def load_records(cfg: AblationConfig) -> list[RunRecord]:
    """Stored records of ``cfg``'s planned pairs (for re-reporting without running)."""
    from nas_harness.records import redact
    from nas_harness.records._storage import sqlite_path

    path = sqlite_path(cfg.storage_url)
    if path is not None and not path.is_file():
        raise ConfigError(f"run.storage: {redact(cfg.storage_url)} does not exist (nothing has been run yet)")
    store = AblationStore(cfg.storage_url, cfg.name)
    final = store.records()
    return [final[p] for p in plan_jobs(cfg) if p in final]


"""Run every (variant, seed) pair of an ablation, durably, through the shared trial/backends machinery.

Storage choice: an Optuna study in SQLite (``results/<name>/ablation.db`` by default) holding one trial per
finished (variant, seed) run.  Why Optuna rather than a bespoke table:

- it is the format every search in this project already writes, so ``nas_harness.results`` (frames,
  exports, plots) reads ablation runs without new code, and trial user attributes follow the same contract
  (``arch``, ``macs``, ``params``, ``val_acc``, ``test_acc``, ``seed``, ``versions``, ``fail_reason`` ...)
  plus ``variant``;
- a finished run is written with ``study.add_trial`` — a single SQLite transaction issued in the driver as
  each job returns — so a SIGKILL at any moment leaves either the whole record or nothing: no half-written
  or stale RUNNING rows to clean up, and a restart simply skips the pairs already present;
- a run in progress also writes a per-epoch training checkpoint next to the storage
  (``checkpoints/<trial key>.pt``, removed when the run is stored), so a long run killed mid-way resumes
  from its last finished epoch instead of from scratch.

Jobs are executed by :func:`nas_harness.backends.run_jobs` (local: in this process, one after another; Ray:
one task per job), which calls :func:`nas_harness.trial.run_trial` — the same trial code as the search.
A failed run (NaN loss, OOM, any exception) is stored as a FAIL trial with its reason; the others go on.
Failed pairs are retried on a later invocation only with ``retry_failed=True``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nas_harness.errors import ConfigError
from nas_harness.records import TrialRecord

from .config import AblationConfig

__all__ = ["AblationRun", "AblationStore", "RunRecord", "load_records", "plan_jobs", "run_ablation"]

_FORMAT_VERSION = 1


@dataclass(frozen=True)
class RunRecord:
    """One stored (variant, seed) run: ``state`` is 'ok' or 'failed' (with ``error``)."""

    variant: str
    seed: int
    state: str
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def record(self) -> TrialRecord:
        """The stored trial record of this run."""
        return TrialRecord.from_attrs(self.metrics)

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


class AblationStore:
    """The durable record of an ablation (an Optuna study in SQLite; see the module docstring)."""

    def __init__(self, url: str, name: str) -> None:
        import optuna

        from nas_harness.records import open_storage, redact

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.url = url
        self.path = redact(url)  # what messages show
        self.name = name
        self.study = optuna.create_study(storage=open_storage(url), study_name=name, direction="maximize",
                                         load_if_exists=True)

    # ------------------------------------------------------------------ study-level metadata
    def bind(self, cfg: AblationConfig) -> Any:
        """Check that stored runs were made with ``cfg``'s recipe and variant archs; record them if new.

        Runs made with another recipe (data, training budget and thread count, trial settings) or a variant
        name that now means another arch are not comparable, so that is an error rather than a silent mix.
        Returns the training recipe to use: ``cfg.train`` with the thread count fixed for this ablation.
        """
        attrs = self.study.user_attrs
        stored = attrs.get("recipe")
        threads = cfg.train.threads
        if threads is None:
            stored_threads = ((stored or {}).get("train") or {}).get("threads") if isinstance(stored, dict) else None
            threads = stored_threads if stored_threads is not None else _default_threads(cfg)
        train = cfg.train.replace(threads=threads)
        recipe = json.loads(json.dumps(cfg.replace_train(train).recipe(), sort_keys=True, default=str))
        if stored is not None and stored != recipe:
            diff = sorted(k for k in set(stored) | set(recipe) if stored.get(k) != recipe.get(k))
            raise ConfigError(
                f"storage {self.path}: holds runs of ablation {self.name!r} made with a different recipe "
                f"({', '.join(diff)} changed); use another name/storage or delete the file to start over"
            )
        archs = dict(attrs.get("archs", {}))
        for v, a in cfg.archs.items():
            if v in archs and archs[v] != str(a):
                raise ConfigError(
                    f"variants: {v!r} stored in {self.path} as a different arch ({archs[v]}); rename the variant "
                    "or use another storage"
                )
            archs[v] = str(a)
        if stored is None:
            self.study.set_user_attr("recipe", recipe)
            self.study.set_user_attr("kind", "ablation")
            self.study.set_user_attr("format_version", _FORMAT_VERSION)
            self.study.set_user_attr("objective", "ablation")
            self.study.set_user_attr("metric_names", ["test_acc"])
        self.study.set_user_attr("archs", archs)
        self.study.set_user_attr("config", _stored_config(cfg))
        return train

    # ------------------------------------------------------------------ runs
    def records(self) -> dict[tuple[str, int], RunRecord]:
        """Latest record per (variant, seed); a completed run always wins over a failed one."""
        from optuna.trial import TrialState

        out: dict[tuple[str, int], RunRecord] = {}
        for t in self.study.get_trials(deepcopy=False):
            ua = t.user_attrs
            if "variant" not in ua or "seed" not in ua:
                continue
            key = (str(ua["variant"]), int(ua["seed"]))
            if t.state == TrialState.COMPLETE:
                out[key] = RunRecord(key[0], key[1], "ok", dict(ua))
            elif t.state == TrialState.FAIL and (key not in out or out[key].state != "ok"):
                out[key] = RunRecord(key[0], key[1], "failed", dict(ua), str(ua.get("fail_reason", "failed")))
        return out

    def add(self, variant: str, seed: int, record: TrialRecord | None, error: str | None,
            arch: str | None = None) -> RunRecord:
        """Store one finished run atomically (one transaction) through :func:`nas_harness.records.add`."""
        from nas_harness.records import Outcome, add

        rec = (record or TrialRecord(arch=arch)).replace(variant=variant, seed=int(seed))
        if error is None:
            value = rec.test_acc if rec.test_acc is not None else rec.val_acc
            outcome = Outcome("complete", [float(value if value is not None else float("nan"))], rec)
        else:
            outcome = Outcome("fail", None, rec.replace(fail_reason=error))
        frozen = add(self.study, outcome)
        ok = frozen.state.name == "COMPLETE"
        attrs = dict(frozen.user_attrs)
        return RunRecord(variant, seed, "ok" if ok else "failed", attrs,
                         None if ok else str(attrs.get("fail_reason", "failed")))


def _default_threads(cfg: AblationConfig) -> int:
    if cfg.run.backend == "ray":
        return max(1, int(cfg.ray.cpus_per_trial))
    from nas_harness.train.trainer import usable_cores

    return max(1, min(8, usable_cores()))


def _stored_config(cfg: AblationConfig) -> dict[str, Any]:
    from nas_harness.records import redact

    d = cfg.to_dict()
    d["run"]["storage"] = redact(d["run"]["storage"])
    d["ray"]["address"] = redact(d["ray"]["address"])
    return d


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
    from nas_harness.backends import run_jobs
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
    skipped = [p for p in plan if p in done and (done[p].state == "ok" or not retry_failed)]
    todo = [p for p in plan if p not in skipped]
    say(f"ablation {cfg.name}: {len(cfg.variants)} variants x {len(cfg.seeds)} seeds = {len(plan)} runs; "
        f"{len(skipped)} already stored, {len(todo)} to run ({cfg.run.backend} backend, {train.threads} "
        f"thread(s) per run); storage {store.path}")
    ran: list[tuple[str, int]] = []
    if todo:
        jobs = _specs(cfg, todo, train)
        by_key = {j.key: p for j, p in zip(jobs, todo)}
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(plan), initial=len(skipped), desc=cfg.name, unit="run", file=sys.stderr,
                       dynamic_ncols=True)

        def on_result(res: Any) -> None:
            variant, seed = by_key[res.key]
            if res.interrupted:  # not the run's fault: left unstored, so the next invocation runs it again
                say(f"{variant} seed {seed}: {res.error}; not stored, run the same command again to retry it")
                return
            rec = store.add(variant, seed, res.record if res.ok else None, None if res.ok else res.error or "failed",
                            arch=str(cfg.archs[variant]))
            ran.append((variant, seed))
            if rec.state == "ok":
                m = rec.metrics
                msg = (f"{variant} seed {seed}: test {m.get('test_acc', float('nan')):.4f} "
                       f"val {m.get('val_acc', float('nan')):.4f} ({m.get('train_time_s', 0.0):.0f} s train)")
            else:
                msg = f"{variant} seed {seed}: FAILED: {rec.error}"
            if bar is not None:
                bar.update(1)
                bar.write(msg, file=sys.stderr)
            else:
                say(msg)
            if on_record is not None:
                on_record(rec)

        epochs = cfg.train.epochs

        def on_epoch(key: str, rep: Any) -> None:
            of = f"/{epochs:g}" if epochs is not None else ""
            msg = (f"{key}: epoch {rep.epoch}{of} val {rep.val_acc:.4f} train loss {rep.train_loss:.3f} "
                   f"({rep.elapsed_s:.0f} s)")
            if bar is not None:
                bar.set_postfix_str(msg, refresh=True)
            else:
                say(msg)

        r = cfg.ray
        try:
            run_jobs(jobs, backend=cfg.run.backend, cpus_per_job=r.cpus_per_trial, gpus_per_job=r.gpus_per_trial,
                     max_concurrent=r.max_concurrent or None, ray_address=r.address or None, on_result=on_result,
                     checkpoint_dir=cfg.out_dir / "checkpoints", on_epoch=on_epoch)
        finally:
            if bar is not None:
                bar.close()
    final = store.records()
    records = [final[p] for p in plan if p in final]
    return AblationRun(cfg, records, ran, skipped, time.perf_counter() - t0)


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


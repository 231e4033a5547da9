"""A durable, resumable list of fixed (group, seed) training jobs: what ablations, ``confirm`` and ``fidelity``
have in common.

Storage: an Optuna study (in the results folder's storage, next to the search it re-evaluates, or in the
ablation's own SQLite file) holding one trial per finished job, written with :func:`nas_harness.records.add`:

- it is the format every search in this project already writes, so :mod:`nas_harness.results` reads the runs
  without new code, and each trial's user attributes follow the :class:`~nas_harness.records.TrialRecord`
  contract plus the group key (``variant`` for ablations, ``job`` for re-evaluations) and ``seed``;
- a finished job is stored by ``study.add_trial`` -- one transaction, issued in the driver as the job
  returns -- so a SIGKILL at any moment leaves either the whole record or nothing: no half-written or stale
  RUNNING rows to clean up, and a restart skips the jobs already present;
- a job in progress writes a per-epoch training checkpoint (``checkpoint_dir``), so a long job killed mid-way
  resumes from its last finished epoch.

The study records the recipe its runs were made with and which arch each group means; a later run with
another recipe, or a group name that now means another arch, is refused (a ConfigError) instead of mixing
runs that are not comparable.  Jobs run through :func:`nas_harness.backends.run_jobs` (local, or one Ray task
each), i.e. through :func:`nas_harness.trial.run_trial`, the same trial code as the search.  A failed job
(NaN loss, OOM, any exception) is stored as a FAIL trial with its reason and the others go on; it is run again
only with ``retry_failed=True``.  A job whose Ray worker died is not stored, so the next invocation runs it.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nas_harness.errors import ConfigError
from nas_harness.records import TrialRecord, set_study_attrs

if TYPE_CHECKING:  # pragma: no cover
    from nas_harness.evaluation.recipe import Candidate, StudyRecipe
    from nas_harness.trial import TrialSpec

__all__ = ["JobStore", "StoredJobs", "StoredRun", "open_job_store", "run_stored_jobs"]

_FORMAT_VERSION = 1
Key = tuple[str, int]


@dataclass(frozen=True)
class StoredRun:
    """One stored job: its ``group`` (an ablation variant, a re-evaluated arch), ``seed``, ``state`` ('ok' or
    'failed', with ``error``) and the stored user attributes (``metrics``)."""

    group: str
    seed: int
    state: str
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def record(self) -> TrialRecord:
        return TrialRecord.from_attrs(self.metrics)


def _jsonable(d: Any) -> Any:
    return json.loads(json.dumps(d, sort_keys=True, default=str))


class JobStore:
    """The durable record of a job list (see the module docstring).

    ``storage``: a URL (opened with :func:`nas_harness.records.open_storage`) or an open Optuna storage;
    ``group_attr``: the user attribute naming a job's group; ``value_keys``: the record fields tried in order
    for the trial's objective value (what Optuna shows; the analyses read the record).
    """

    def __init__(self, storage: str | Any, name: str, *, group_attr: str = "job",
                 value_keys: Sequence[str] = ("val_acc",), label: str | None = None) -> None:
        import optuna

        from nas_harness.records import open_storage, redact

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.url = storage if isinstance(storage, str) else None
        self.path = label or (redact(storage) if isinstance(storage, str) else name)  # what messages show
        self.name = name
        self.group_attr = group_attr
        self.value_keys = tuple(value_keys)
        opened = open_storage(storage) if isinstance(storage, str) else storage
        self.study = optuna.create_study(storage=opened, study_name=name, direction="maximize",
                                         load_if_exists=True)

    # ------------------------------------------------------------------ study-level metadata
    def bind(self, recipe: Mapping[str, Any], archs: Mapping[str, str], *, kind: str,
             attrs: Mapping[str, Any] | None = None, what: str = "runs", data: Any = None,
             log: Callable[[str], None] | None = None) -> None:
        """Check that stored runs were made with ``recipe`` and that each group still means the same arch;
        record both (and ``attrs``) when new.  A mismatch is a ConfigError naming what changed.

        ``data``: the :class:`~nas_harness.data.ProxyConfig` the runs train on; where it names a folder, the
        data's content fingerprint is part of the recipe (``data.content``,
        :func:`nas_harness.data.content_fingerprint`, the rule studies follow): the same keys on other images
        are refused.  Runs stored before data identities existed get this data's recorded (``log`` says so)."""
        from nas_harness.records import check_study_attrs

        check_study_attrs(self.study)  # the recipe, the archs, ...: one line naming storage, study and key
        self.records()  # every stored run checked before anything is written: a damaged store is left as it is
        stored_attrs = self.study.user_attrs
        stored = stored_attrs.get("recipe")
        known = dict(stored_attrs.get("archs") or {})
        recipe = _jsonable(dict(recipe))
        adopt = False
        if data is not None:
            from nas_harness.data import content_fingerprint

            content = content_fingerprint(data)
            if content is not None and isinstance(recipe.get("data"), dict):
                recipe["data"]["content"] = content
                old_data = (stored or {}).get("data")
                if isinstance(old_data, dict) and "content" not in old_data and stored is not None:
                    stored = {**stored, "data": {**old_data, "content": content}}
                    adopt = stored == recipe
        if stored is not None and stored != recipe:
            raise ConfigError(
                f"storage {self.path}: holds {what} of {self.name!r} made with a different recipe "
                f"({', '.join(_changed(stored, recipe))} changed: runs on it would not be comparable); use another "
                "name/storage or delete the file to start over"
            )
        for group, arch in archs.items():
            if group in known and known[group] != str(arch):
                raise ConfigError(f"{self.group_attr} {group!r} is stored in {self.path} as a different arch "
                                  f"({known[group]}); rename it or use another storage")
            known[group] = str(arch)
        if adopt:  # every check passed: only now is anything written
            set_study_attrs(self.study, recipe=stored)
            (log or _say)(f"{self.name!r} predates data identities: recording this data's now")
        if stored is None:
            set_study_attrs(self.study, recipe=recipe, kind=kind, format_version=_FORMAT_VERSION, objective=kind,
                            metric_names=[self.value_keys[0]])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # experimental in Optuna 5
                self.study.set_metric_names([self.value_keys[0]])  # optuna-dashboard names the value
        if known != stored_attrs.get("archs"):
            set_study_attrs(self.study, archs=known)
        for k, v in (attrs or {}).items():
            v = _jsonable(v)
            if stored_attrs.get(k) != v:
                set_study_attrs(self.study, **{k: v})

    def _damaged(self, key: str, value: Any, allowed: str, trial: int | None = None) -> None:
        from nas_harness.results import damaged

        raise damaged(self.study, key, value, allowed, trial)

    # ------------------------------------------------------------------ runs
    def records(self) -> dict[Key, StoredRun]:
        """Latest record per (group, seed); a completed run always wins over a failed one."""
        from optuna.trial import TrialState

        from nas_harness.results import check_stored_trial, stored_trials

        out: dict[Key, StoredRun] = {}
        for t in stored_trials(self.study):
            ua = t.user_attrs
            if self.group_attr not in ua or "seed" not in ua:
                continue
            check_stored_trial(self.study, t)
            if not isinstance(ua[self.group_attr], str):
                self._damaged(self.group_attr, ua[self.group_attr], "text", t.number)
            if isinstance(ua["seed"], bool) or not isinstance(ua["seed"], int):
                self._damaged("seed", ua["seed"], "an integer", t.number)
            key = (ua[self.group_attr], ua["seed"])
            if t.state == TrialState.COMPLETE:
                out[key] = StoredRun(key[0], key[1], "ok", dict(ua))
            elif t.state == TrialState.FAIL and (key not in out or out[key].state != "ok"):
                out[key] = StoredRun(key[0], key[1], "failed", dict(ua), str(ua.get("fail_reason", "failed")))
        return out

    def add(self, group: str, seed: int, record: TrialRecord | None, error: str | None,
            arch: str | None = None, **extra: Any) -> StoredRun:
        """Store one finished job atomically (one transaction) through :func:`nas_harness.records.add`."""
        from nas_harness.records import Outcome, add

        rec = (record or TrialRecord(arch=arch)).replace(seed=int(seed)).with_extra(**{self.group_attr: group},
                                                                                     **extra)
        if error is None:
            value = next((getattr(rec, k) for k in self.value_keys if getattr(rec, k) is not None), None)
            outcome = Outcome("complete", [float(value if value is not None else float("nan"))], rec)
        else:
            outcome = Outcome("fail", None, rec.replace(fail_reason=error))
        frozen = add(self.study, outcome)
        ok = frozen.state.name == "COMPLETE"
        attrs = dict(frozen.user_attrs)
        return StoredRun(group, int(seed), "ok" if ok else "failed", attrs,
                         None if ok else str(attrs.get("fail_reason", "failed")))


@dataclass
class StoredJobs:
    """What :func:`run_stored_jobs` did: the stored record of every planned job (in plan order, where one
    exists), the jobs run now and those found stored already."""

    runs: list[StoredRun]
    ran: list[Key]
    skipped: list[Key]
    wall_s: float

    @property
    def failed(self) -> list[StoredRun]:
        return [r for r in self.runs if r.state != "ok"]


def run_stored_jobs(
    store: JobStore,
    plan: Sequence[Key],
    make_jobs: Callable[[list[Key]], list[Any]],
    *,
    backend: str = "local",
    ray: Any = None,
    retry_failed: bool = False,
    progress: bool = True,
    desc: str = "jobs",
    checkpoint_dir: Any = None,
    budget: str = "",
    describe: Callable[[StoredRun], str] | None = None,
    on_record: Callable[[StoredRun], None] | None = None,
    extra: Callable[[Key], Mapping[str, Any]] | None = None,
    log: Callable[[str], None] | None = None,
    workers: int = 1,
) -> StoredJobs:
    """Run the jobs of ``plan`` not stored yet (``make_jobs(todo)`` -> one :class:`~nas_harness.backends.Job`
    per key, same order) and store each as it returns; return every stored record of the plan.

    ``ray``: a :class:`~nas_harness.backends.RayConfig` (resources per job) for ``backend='ray'``.
    ``describe(run)`` is the line printed per stored run; ``on_record(run)`` is called after each run is
    durably stored (tests use it to simulate an interruption); ``extra(key)`` adds user attributes.
    ``workers``: local jobs at once, each in a worker process (0: as many as the cores allow at the jobs'
    threads; 1: in this process).  ``KeyboardInterrupt`` propagates; everything stored before it is kept.
    """
    from nas_harness.backends import run_jobs

    say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    t0 = time.perf_counter()
    done = store.records()
    skipped = [p for p in plan if p in done and (done[p].state == "ok" or not retry_failed)]
    todo = [p for p in plan if p not in skipped]
    ran: list[Key] = []
    if todo:
        jobs = make_jobs(list(todo))
        by_key = {j.key: p for j, p in zip(jobs, todo)}
        arch_of = {p: str(j.spec.arch) for j, p in zip(jobs, todo)}
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(plan), initial=len(skipped), desc=desc, unit="run", file=sys.stderr,
                       dynamic_ncols=True)

        def on_result(res: Any) -> None:
            group, seed = by_key[res.key]
            if res.interrupted:  # not the job's fault: left unstored, so the next invocation runs it again
                say(f"{res.key}: {res.error}; not stored, run the same command again to retry it")
                return
            rec = store.add(group, seed, res.record if res.ok else None, None if res.ok else res.error or "failed",
                            arch=arch_of[(group, seed)], **dict(extra((group, seed)) if extra else {}))
            ran.append((group, seed))
            msg = describe(rec) if describe is not None else _describe(res.key, rec)
            if bar is not None:
                bar.update(1)
                bar.write(msg, file=sys.stderr)
            else:
                say(msg)
            if on_record is not None:
                on_record(rec)

        def on_epoch(key: str, rep: Any) -> None:
            msg = (f"{key}: epoch {rep.epoch}{budget} val {rep.val_acc:.4f} train loss {rep.train_loss:.3f} "
                   f"({rep.elapsed_s:.0f} s)")
            if bar is not None:
                bar.set_postfix_str(msg, refresh=True)
            else:
                say(msg)

        try:
            run_jobs(jobs, backend=backend, resources=ray, on_result=on_result, checkpoint_dir=checkpoint_dir,
                     on_epoch=on_epoch, workers=workers)
        finally:
            if bar is not None:
                bar.close()
    final = store.records()
    return StoredJobs([final[p] for p in plan if p in final], ran, skipped, time.perf_counter() - t0)


def retrain_candidates(
    store: JobStore,
    cands: Sequence[Candidate],
    seeds: Sequence[int],
    recipe: StudyRecipe,
    spec: Callable[[Candidate, int], TrialSpec],
    *,
    bind: Mapping[str, Any],
    announce: Callable[[int, int], str],
    detail: Callable[[Candidate, Mapping[str, Any]], str],
    report_only: bool = False,
    backend: str = "local",
    ray: Any = None,
    retry_failed: bool = False,
    progress: bool = True,
    checkpoint_dir: Any = None,
    on_record: Callable[[StoredRun], None] | None = None,
    log: Callable[[str], None] | None = None,
    workers: int = 1,
) -> StoredJobs:
    """Train each (candidate, seed) not stored yet into ``store`` and return every stored run of the plan:
    the one loop behind ``confirm`` and ``fidelity``.

    The plan is seed-major (an interrupted run leaves whole seeds to pair).  ``spec(cand, seed)`` is the trial
    to run; ``bind`` holds :meth:`JobStore.bind`'s ``recipe``, ``kind``, ``attrs`` and ``what`` (the archs are
    the candidates'); ``announce(n_planned, n_stored)`` is the opening line; ``detail(cand, metrics)`` ends
    each finished run's line.  ``report_only`` trains nothing and binds nothing: the runs stored so far.
    """
    say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    plan = [(c.job, s) for s in seeds for c in cands]
    by_job = {c.job: c for c in cands}
    if report_only:
        done = store.records()
        return StoredJobs([done[p] for p in plan if p in done], [], [p for p in plan if p in done], 0.0)
    store.bind(bind["recipe"], {c.job: c.arch for c in cands}, kind=bind["kind"], attrs=bind.get("attrs"),
               what=bind["what"], data=recipe.data, log=say)
    say(announce(len(plan), sum(1 for p in plan if p in store.records())))

    def make_jobs(todo: list[Key]) -> list[Any]:
        from nas_harness.backends import Job

        return [Job(key=f"{by_job[j].label}/seed{s}", spec=spec(by_job[j], s)) for j, s in todo]

    def describe(run: StoredRun) -> str:
        c = by_job[run.group]
        if run.state != "ok":
            return f"{c.label} seed {run.seed}: FAILED: {run.error}"
        return f"{c.label} seed {run.seed}: {detail(c, run.metrics)}"

    budget = f"/{recipe.train.epochs:g}" if recipe.train.epochs is not None else ""
    return run_stored_jobs(store, plan, make_jobs, backend=backend, ray=ray, retry_failed=retry_failed,
                           progress=progress, desc=store.name, checkpoint_dir=checkpoint_dir, budget=budget,
                           describe=describe, on_record=on_record,
                           extra=lambda k: {"label": by_job[k[0]].name, "kind": by_job[k[0]].kind}, log=say,
                           workers=workers)


def open_job_store(src: Any, runs_at: Any, name: str, what: str, say: Callable[[str], None],
                   report_only: bool = False) -> JobStore:
    """The job store ``name`` of ``confirm``/``fidelity`` where :func:`~nas_harness.evaluation.recipe.open_study_source`
    put the runs (``runs_at``, a :class:`~nas_harness.evaluation.recipe.RunsStorage`; ``src`` the study's source); when
    they moved to ``--out`` (a read-only study storage), one line says so (and about runs the read-only storage
    holds already, which cannot be added to).  ``report_only``: the store must exist already (nothing is
    created to report on nothing); ConfigError otherwise."""
    if report_only:
        import optuna

        if name not in optuna.get_all_study_names(runs_at.storage):
            raise ConfigError(f"{what} --report-only: {runs_at.label} holds no {what} runs of this study (study "
                              f"{name!r}); run it without --report-only to train them")
    if runs_at.moved:
        import optuna

        earlier = name in optuna.get_all_study_names(src.storage)
        say(f"note: {src.label} cannot be written; the {what} runs are stored in {runs_at.label} (study {name!r})"
            + (f"; the {name!r} runs already in {src.label} are not used (copy the folder somewhere writable to "
               "resume them)" if earlier else ""))
    return JobStore(runs_at.storage, name, group_attr="job", value_keys=("val_acc",), label=runs_at.label)


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _changed(stored: Mapping[str, Any], recipe: Mapping[str, Any]) -> list[str]:
    """The keys that differ between two recipes, one level into tables (``data.content``, ``train.epochs``)."""
    out = []
    for k in sorted(set(stored) | set(recipe)):
        a, b = stored.get(k), recipe.get(k)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            out += [f"{k}.{sub}" for sub in sorted(set(a) | set(b)) if a.get(sub) != b.get(sub)]
        else:
            out.append(k)
    return out


def _describe(key: str, run: StoredRun) -> str:
    if run.state != "ok":
        return f"{key}: FAILED: {run.error}"
    m = run.metrics
    test = f" test {m['test_acc']:.4f}" if m.get("test_acc") is not None else ""
    return f"{key}: val {m.get('val_acc', float('nan')):.4f}{test} ({m.get('train_time_s', 0.0):.0f} s train)"

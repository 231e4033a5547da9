"""One benchmark run (a strategy, a seed, ``trials`` trials) in memory with Optuna's ask/tell, and the runner
that executes every (strategy, seed) pair in parallel processes and stores each finished run durably.

Rules (stated in the report):

* ``source = "table"`` / ``"recorded"``: a strategy searches the table's records only, by the rule of
  :class:`~nas_harness.tables.RecordSampler` (the one a study with ``[evaluator] kind = "table"`` follows):
  ``random`` draws records uniformly **without replacement** (a seeded permutation); a model-based sampler
  proposes a point of the table's space (one categorical per per-stage choice the table varies) and the
  proposal is mapped onto the **nearest unseen record by Hamming distance** (the number of differing choices;
  ties broken uniformly at random with the run's seeded generator), so no record is counted twice.  The trial
  holds the record's parameters, so the sampler learns from the record it got, not from its proposal.
* ``source = "surrogate"``: the sampler's proposal (any arch of the space) is scored by the surrogate; archs may
  repeat (a sampler that repeats itself pays for it).

A stored run is one JSON file ``runs/<strategy>-<seed>.json`` written atomically (temp file + rename) as soon as
it finishes: re-running skips stored runs, and ``kill -9`` loses only the runs in flight.
"""

from __future__ import annotations

import io
import json
import math
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nas_harness._config import read_file, write_output
from nas_harness.backends import fit_workers
from nas_harness.benchmark._config import BenchmarkConfig
from nas_harness.errors import ConfigError
from nas_harness.tables import (
    ROW_KEY,
    BenchmarkTable,
    RecordSampler,
    accel_nasbench,
    accel_nasbench_space,
    random_order,
    table_from_records,
)


@dataclass(frozen=True)
class Problem:
    """What a run searches: the table (reference, features, costs) and, for the surrogate, the scorer."""

    source: str
    table: BenchmarkTable
    objective: str
    cost: str
    split_seed: int = 0

    def cost_values(self) -> np.ndarray | None:
        """The cost column of the table's archs (throughput negated: lower is better), or None."""
        if self.objective != "multi":
            return None
        col = np.asarray(self.table.columns[self.cost], dtype=float)
        return -col if self.cost.startswith("throughput") else col


def make_problem(cfg: BenchmarkConfig) -> Problem:
    """The problem of a benchmark file; ConfigError when a recorded table cannot be made."""
    table = recorded_table(cfg.recorded) if cfg.source == "recorded" else accel_nasbench()
    if cfg.objective == "multi":
        if cfg.cost not in table.columns:
            raise ConfigError(f"cost: the {table.name} table has no {cfg.cost!r} column; it has "
                              f"{', '.join(sorted(table.columns))}")
        keep = ~np.isnan(np.asarray(table.columns[cfg.cost], dtype=float))
        if not keep.all():  # a record without this measurement cannot be a point of the front
            table = _subset(table, np.flatnonzero(keep))
    return Problem(cfg.source, table, cfg.objective, cfg.cost, cfg.split_seed)


#: Largest ``trials.csv`` a recorded table reads (a study of 100,000 trials writes about 60 MB).
MAX_RECORDED_BYTES = 256 << 20
#: The recorded values a table uses, and the range each must be in (NaN / empty: not recorded).
_RECORDED = {"val_acc": (0.0, 1.0), "macs": (0.0, 1e18), "params": (0.0, 1e15), "latency_ms": (0.0, 1e9),
             "val_n": (1.0, 1e12)}


def _check_recorded(df: Any, path: Path) -> None:
    """Refuse, in one line naming the file, the trial and the column, a finished trial's recorded value that is
    not a number in its range (a trials.csv changed by hand: text, 1e308, a negative count) or an arch that is
    not text."""
    numbers = df["number"].tolist() if "number" in df else list(range(len(df)))
    for col, (lo, hi) in _RECORDED.items():
        if col not in df:
            continue
        for n, v in zip(numbers, df[col].tolist()):
            try:
                x = float(v)
            except (TypeError, ValueError):
                x = math.inf  # text: refused below
            if isinstance(v, float) and math.isnan(v):
                continue  # not measured (an empty cell)
            if not (math.isfinite(x) and lo <= x <= hi) or isinstance(v, bool):
                text = repr(v) if len(repr(v)) <= 60 else repr(v)[:57] + "..."
                raise ConfigError(f"recorded: {str(path)!r}: trial {n}: {col} = {text} is not a number in "
                                  f"[{lo:g}, {hi:g}] (changed by hand?)")
    for n, a in zip(numbers, df["arch"].tolist()):
        if not isinstance(a, str) or not a:
            raise ConfigError(f"recorded: {str(path)!r}: trial {n}: arch = {a!r} is not an arch string")


def _subset(table: BenchmarkTable, rows: np.ndarray) -> BenchmarkTable:
    return BenchmarkTable(name=f"{table.name} ({len(rows)} archs measured)", archs=tuple(table.archs[i] for i in rows),
                          val_acc=table.val_acc[rows], columns={k: v[rows] for k, v in table.columns.items()},
                          record_ids=tuple(table.record_ids[i] for i in rows), val_n=table.val_n,
                          source=table.source, mac_convention=table.mac_convention)


def recorded_table(folders: list[str]) -> BenchmarkTable:
    """A table from the finished trials in each folder's ``trials.csv`` (complete, full-budget, not rejected)."""
    import pandas as pd

    frames = []
    for f in folders:
        path = Path(f) / "trials.csv"
        if not path.is_file():
            raise ConfigError(f"recorded: {str(path)!r}: no such file (a study's results folder holds trials.csv; "
                              "run `nas-harness report` on the study first)")
        raw = read_file(path, MAX_RECORDED_BYTES, f"recorded: {str(path)!r}", what="a trials.csv")
        try:
            df = pd.read_csv(io.BytesIO(raw))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"recorded: {str(path)!r}: not a readable CSV ({' '.join(str(exc).split())[:120]})"
                              ) from None
        if "arch" not in df or "val_acc" not in df:
            raise ConfigError(f"recorded: {str(path)!r}: no arch/val_acc columns (not a trials.csv)")
        ok = df["state"].eq("COMPLETE") if "state" in df else True
        if "full_budget" in df:
            ok = ok & df["full_budget"].astype(str).eq("True")
        if "rejected" in df:
            ok = ok & df["rejected"].isna()
        _check_recorded(df[ok], path)
        frames.append(df[ok])
    rows = pd.concat(frames).to_dict("records")
    for r in rows:
        for k, v in list(r.items()):
            if isinstance(v, float) and math.isnan(v):
                r[k] = None
    return table_from_records(rows, name="recorded", source=", ".join(folders))


# ------------------------------------------------------------------------------------------ one run


def _sampler(strategy: str, seed: int, multi: bool) -> Any:
    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if strategy == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if strategy == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if strategy == "tpe_independent":
        return optuna.samplers.TPESampler(seed=seed, multivariate=False)  # Optuna 5: tpe is multivariate
    if strategy == "nsgaii":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if strategy == "nsgaiii":
        return optuna.samplers.NSGAIIISampler(seed=seed)
    if strategy == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    raise ConfigError(f"strategies: {strategy!r} is not a strategy")


def run_one(problem: Problem, strategy: str, seed: int, trials: int) -> dict[str, Any]:
    """One run: the accuracy (and cost) of each trial in order, the archs (table rows or strings), timings."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    t0, c0 = time.perf_counter(), time.process_time()
    multi = problem.objective == "multi"
    directions = ["maximize", "minimize"] if multi else ["maximize"]
    cost_col = problem.cost_values()
    table = problem.table
    out: dict[str, Any] = {"strategy": strategy, "seed": seed}
    if problem.source == "surrogate":
        acc, cost, archs = _run_surrogate(problem, strategy, seed, trials, directions)
        out["archs"] = archs
    else:
        if trials > len(table):
            raise ConfigError(f"trials: {trials} > the table's {len(table)} archs (a table run never repeats a record)")
        rows = _run_table(table, strategy, seed, trials, directions, cost_col)
        acc = [float(table.val_acc[i]) for i in rows]
        cost = [float(cost_col[i]) for i in rows] if multi else None
        out["rows"] = rows
    out.update(acc=acc, cost=cost, seconds=time.perf_counter() - t0, cpu_seconds=time.process_time() - c0)
    return out


def _run_table(table: BenchmarkTable, strategy: str, seed: int, trials: int, directions: list[str],
               cost_col: np.ndarray | None) -> list[int]:
    """The rows a strategy takes, by :class:`~nas_harness.tables.RecordSampler`'s rule (the one table studies
    use); random search is its seeded permutation directly (the same rows, without Optuna's per-trial work)."""
    if strategy == "random":
        return [int(i) for i in random_order(len(table), seed)[:trials]]
    import optuna

    sampler = RecordSampler.for_features(_sampler(strategy, seed, len(directions) > 1), table, seed)
    study = optuna.create_study(directions=directions, sampler=sampler)
    rows: list[int] = []
    for _ in range(trials):
        trial = study.ask(sampler.distributions)
        i = int(study._storage.get_trial_system_attrs(trial._trial_id)[ROW_KEY])
        rows.append(i)
        study.tell(trial, [float(table.val_acc[i])] + ([float(cost_col[i])] if cost_col is not None else []))
    return rows


def _run_surrogate(problem: Problem, strategy: str, seed: int, trials: int,
                   directions: list[str]) -> tuple[list[float], list[float] | None, list[str]]:
    import optuna

    from nas_harness.flops import count_macs, count_params
    from nas_harness.tables import accel_nasbench_surrogate

    space = accel_nasbench_space()
    fit = accel_nasbench_surrogate(problem.split_seed)
    study = optuna.create_study(directions=directions, sampler=_sampler(strategy, seed, len(directions) > 1))
    memo: dict[str, tuple[float, float]] = {}
    acc, cost, archs = [], [], []
    for _ in range(trials):
        trial = study.ask()
        arch = space.suggest(trial)
        key = str(arch)
        if key not in memo:
            a = min(1.0, max(0.0, fit.predict_arch(arch)))
            c = math.nan
            if directions[1:]:
                c = float(count_params(arch) if problem.cost == "params" else count_macs(
                    arch, convention="thop" if problem.cost == "macs_thop" else "fvcore").total)
            memo[key] = (a, c)
        a, c = memo[key]
        study.tell(trial, [a, c] if directions[1:] else a)
        acc.append(a)
        cost.append(c)
        archs.append(key)
    return acc, (cost if directions[1:] else None), archs


# ------------------------------------------------------------------------------------------ the runner


def _store(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with write_output(path) as f:
        json.dump(doc, f, separators=(",", ":"), allow_nan=False)
        f.flush()
        os.fsync(f.fileno())


def _load(path: Path, fingerprint: str) -> dict[str, Any] | None:
    """A stored run, or None when absent/torn; ConfigError when it belongs to another benchmark identity."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or "acc" not in doc:
        return None
    if doc.get("fingerprint") != fingerprint:
        raise ConfigError(f"{path}: a run of another benchmark setup (source, trials, objective, cost or table "
                          "differ); give this benchmark another name or remove the folder")
    return doc


_PROBLEM: Problem | None = None


def _job(args: tuple[str, int, int]) -> dict[str, Any]:
    strategy, seed, trials = args
    assert _PROBLEM is not None
    return run_one(_PROBLEM, strategy, seed, trials)


def run_benchmark(cfg: BenchmarkConfig, log: Callable[[str], None] = print,
                  problem: Problem | None = None) -> tuple[Problem, list[dict[str, Any]]]:
    """Run every (strategy, seed) pair not stored yet (in ``cfg.workers`` processes) and return all runs."""
    global _PROBLEM
    problem = problem or make_problem(cfg)
    if problem.source != "surrogate" and cfg.trials > len(problem.table):
        raise ConfigError(f"trials: {cfg.trials} > the table's {len(problem.table)} archs (a table run never repeats "
                          "a record)")
    fp = cfg.fingerprint
    runs_dir = cfg.out_dir / "runs"
    jobs = [(s, seed) for s in cfg.strategies for seed in range(cfg.seeds)]
    done: dict[tuple[str, int], dict[str, Any]] = {}
    for s, seed in jobs:
        doc = _load(runs_dir / f"{s}-{seed}.json", fp)
        if doc is not None:
            done[(s, seed)] = doc
    todo = [(s, seed, cfg.trials) for s, seed in jobs if (s, seed) not in done]
    if done:
        log(f"benchmark {cfg.name}: {len(done)} of {len(jobs)} runs stored already")
    if todo:
        if problem.source == "surrogate":  # fit once here: the workers are handed the fitted model
            from nas_harness.tables import accel_nasbench_surrogate

            fit = accel_nasbench_surrogate(problem.split_seed)
            log(f"surrogate: held-out Kendall tau {fit.metrics['test_kendall_tau']:.3f}, RMSE "
                f"{100 * fit.metrics['test_rmse']:.2f} pp (split seed {problem.split_seed})")
        _ = problem.table.features  # computed once, handed to the workers
        workers, note = fit_workers(cfg.workers, 1, "cpu", len(todo), what="runs", setting="workers")
        if note:
            log(f"note: {note}")
        log(f"benchmark {cfg.name}: {len(todo)} runs x {cfg.trials} trials on {workers} process(es)")
        t0 = time.perf_counter()
        _PROBLEM = problem
        try:
            results = _map(todo, workers, problem)
            for k, res in enumerate(results, start=1):
                res["fingerprint"] = fp
                _store(runs_dir / f"{res['strategy']}-{res['seed']}.json", res)
                done[(res["strategy"], res["seed"])] = res
                el = time.perf_counter() - t0
                eta = el / k * (len(todo) - k)
                log(f"  [{k}/{len(todo)}] {res['strategy']} seed {res['seed']}: best {100 * max(res['acc']):.2f}% "
                    f"({res['seconds']:.1f} s); elapsed {el:.0f} s, ETA {eta:.0f} s")
        finally:
            _PROBLEM = None
    runs = [done[j] for j in jobs]
    cpu = sum(r.get("cpu_seconds", 0.0) for r in runs)
    n = fit_workers(cfg.workers, 1, "cpu", len(runs), what="runs", setting="workers")[0]
    log(f"benchmark {cfg.name}: {len(runs)} runs, {cpu:.0f} CPU s in the runs (about {cpu / n:.0f} s on {n} idle "
        "cores)")
    return problem, runs


def _init_worker(problem: Problem, fit: Any, parent: int) -> None:
    """A benchmark worker process: the run's problem (and fitted surrogate) from the parent."""
    global _PROBLEM
    from nas_harness.backends._procs import worker_setup

    worker_setup(parent)
    _PROBLEM = problem
    if fit is not None:
        from nas_harness.tables._surrogate import adopt_surrogate

        adopt_surrogate(problem.split_seed, fit)


def _map(todo: list[tuple[str, int, int]], workers: int, problem: Problem) -> Any:
    """The runs of ``todo``, in this process or in ``workers`` fresh (spawned) processes, as they finish.  Fresh
    interpreters, not forks: a fork of a process with threads (a Ray driver, a database pool) can inherit a lock
    held by a thread that does not exist in the child, and hang."""
    if workers <= 1:
        return (_job(t) for t in todo)
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from nas_harness.backends._procs import spawn_context, worker_environment

    fit = None
    if problem.source == "surrogate":
        from nas_harness.tables import accel_nasbench_surrogate

        fit = accel_nasbench_surrogate(problem.split_seed)
    with worker_environment():
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=spawn_context(), initializer=_init_worker,
                                   initargs=(problem, fit, os.getpid()))

    def gen() -> Any:
        try:
            for fut in as_completed([pool.submit(_job, t) for t in todo]):
                yield fut.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    return gen()

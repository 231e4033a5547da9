"""``search`` suite: finished trials per hour, the harness's own overhead per trial.

Throughput (targets on a 2-core machine): the default, one thread per trial and one worker per core, against
the old default, one worker with as many threads as cores (>= 1.6x idle); the default next to as many busy loops
as cores against idle (at most 2.2x slower: the fair share is 2x); Ray against local at one thread per trial
(>= 0.8x).  Each configuration runs the quickstart study (random sampler, no trial cache) in a fresh
``nas-harness search`` process; trials per hour count finished trials over the span from the first trial's
start to the last one's end.

Overhead = wall time of the trial loop minus the trainer's own wall time (training steps, BN recalibration
and validation), i.e. sampling, model building, MAC counting, data lookup, cache and storage writes.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from nas_harness._config import write_text
from nas_harness.bench import Suite

_QUICKSTART = Path(__file__).resolve().parents[2] / "studies" / "quickstart.toml"


def _study(results: Path, name: str, n_trials: int, backend: str = "local", **ray: Any) -> Any:
    from nas_harness._config import read_toml
    from nas_harness.study.config import apply_overrides, validate

    over: dict[str, Any] = {"name": name, "run.results_dir": str(results), "run.n_trials": n_trials, "run.workers": 1,
                            "run.backend": backend, "run.progress": False, "run.plots": False,
                            "run.timeout_s": 0, "trial.cache": False, "sampler.kind": "random",
                            "sampler.enqueue": []}
    over.update({f"ray.{k}": v for k, v in ray.items()})
    d = read_toml(_QUICKSTART, "study file")
    d["sampler"].pop("n_startup_trials", None)  # a TPE-only key: the benchmark samples at random
    apply_overrides(d, over)
    return validate(d)


def _trials(cfg: Any) -> list[Any]:
    import optuna

    return optuna.load_study(study_name=cfg.name, storage=cfg.storage_url).trials


def overhead(results: Path, n_trials: int) -> dict[str, Any]:
    """Run ``n_trials`` quickstart trials locally; split the loop's wall time into trainer vs harness."""
    from nas_harness.study.search import run_search

    cfg = _study(results, "bench-overhead", n_trials)
    t0 = time.perf_counter()
    summary = run_search(cfg, log=lambda msg: None)
    total = time.perf_counter() - t0
    trials = [t for t in _trials(cfg) if "train_wall_s" in t.user_attrs]
    trainer = sum(t.user_attrs["train_wall_s"] for t in trials)
    steps = sum(t.user_attrs["train_time_s"] for t in trials)
    loop = summary.wall_s
    per_trial = [(t.datetime_complete - t.datetime_start).total_seconds() - t.user_attrs["train_wall_s"]
                 for t in trials]
    return {"trials": len(trials), "loop_wall_s": round(loop, 2), "trainer_wall_s": round(trainer, 2),
            "train_steps_s": round(steps, 2), "overhead_s": round(loop - trainer, 3),
            "overhead_pct": round(100 * (loop - trainer) / loop, 2),
            "overhead_per_trial_s": [round(x, 3) for x in per_trial],
            "setup_and_outputs_s": round(total - loop, 2),
            "mean_trial_s": round(loop / max(1, len(trials)), 2), "target_pct": 5.0}


_BUSY = "while True: pass"


def _span_s(trials: list[Any]) -> float:
    """First trial start to last trial end (the search itself, without start-up and outputs)."""
    done = [t for t in trials if t.datetime_complete is not None and t.datetime_start is not None]
    if not done:
        return float("nan")
    return (max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)).total_seconds()


def throughput(results: Path, name: str, n_trials: int, *, workers: int, threads: int, busy: int = 0,
               backend: str = "local", spin: bool = False) -> dict[str, Any]:
    """Finished trials per hour of the quickstart study (random sampler, no cache) run by ``nas-harness search``
    in a fresh process with ``workers`` x ``threads`` (Ray: 1-CPU trials, ``workers`` at once), next to ``busy``
    busy-loop processes; ``spin``: OpenMP threads spin-wait (``NAS_HARNESS_SPIN_WAIT=1``)."""
    import os
    import subprocess
    import sys

    cfg = _study(results, name, n_trials, backend, cpus_per_trial=1.0, max_concurrent=workers)
    path = results / f"{name}.toml"
    _write_study(cfg, path, workers, threads)
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    env.pop("KMP_BLOCKTIME", None)
    env["NAS_HARNESS_SPIN_WAIT"] = "1" if spin else "0"
    loops = [subprocess.Popen([sys.executable, "-c", _BUSY]) for _ in range(busy)]
    load0 = os.getloadavg()[0]
    try:
        proc = subprocess.run([sys.executable, "-m", "nas_harness.cli", "search", str(path), "--no-progress",
                               "--no-plots"], env=env, capture_output=True, text=True, check=False)
    finally:
        for p in loops:
            p.kill()
            p.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"bench search {name}: exit {proc.returncode}: {proc.stderr[-1500:]}")
    trials = _trials(cfg)
    done = sum(1 for t in trials if t.state.name == "COMPLETE")
    span = _span_s(trials)
    per_trial = [t.user_attrs.get("wall_time_s") for t in trials if t.user_attrs.get("wall_time_s")]
    return {"workers": workers, "threads": threads, "busy_loops": busy, "backend": backend, "spin_wait": spin,
            "trials": done, "span_s": round(span, 2), "trials_per_hour": round(3600 * done / span, 1),
            "median_trial_s": round(sorted(per_trial)[len(per_trial) // 2], 2) if per_trial else None,
            "load_average_before": round(load0, 2), "load_average_after": round(os.getloadavg()[0], 2)}


def _write_study(cfg: Any, path: Path, workers: int, threads: int) -> None:
    import json

    d = cfg.to_dict()
    d["run"]["workers"] = workers
    d["train"]["threads"] = threads
    d.pop("evaluator", None)
    d.pop("latency", None)
    d["sampler"] = {"kind": "random", "enqueue": []}
    d["run"]["storage"] = cfg.storage_url
    lines = []
    for key, value in d.items():
        if not isinstance(value, dict):
            lines.append(f"{key} = {json.dumps(value)}")
    for key, value in d.items():
        if isinstance(value, dict):
            lines.append(f"[{key}]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in value.items() if v is not None and not isinstance(v, dict)]
    write_text(path, "\n".join(lines) + "\n")


def _median(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[len(xs) // 2] if len(xs) % 2 else 0.5 * (xs[len(xs) // 2 - 1] + xs[len(xs) // 2])


def run(quick: bool) -> dict[str, Any]:
    """Trials per hour: (a) one worker with as many threads as cores (the old default), (b) the default (one
    thread per trial, one worker per core), each idle and next to as many busy loops as cores, (a) under load
    with spin-waiting OpenMP threads, and (c) Ray against local at one thread per trial.  Runs alternate and
    repeat (``rounds``); medians are reported with every run's figures and load average."""
    from nas_harness.train.trainer import usable_cores

    cores = usable_cores()
    n = 4 if quick else 8
    rounds = 1 if quick else 2
    plan = [("a_idle", dict(workers=1, threads=cores)), ("b_idle", dict(workers=cores, threads=1)),
            ("a_busy", dict(workers=1, threads=cores, busy=cores)),
            ("a_busy_spin", dict(workers=1, threads=cores, busy=cores, spin=True)),
            ("b_busy", dict(workers=cores, threads=1, busy=cores)),
            ("ray_idle", dict(workers=cores, threads=1, backend="ray"))]
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k, _ in plan}
    with tempfile.TemporaryDirectory(prefix="nas-bench-search-") as tmp:
        for r in range(rounds):
            for key, kw in plan:
                runs[key].append(throughput(Path(tmp), f"bench-{key}-{r}", n, **kw))  # type: ignore[arg-type]
        overhead_figures = overhead(Path(tmp), 2 if quick else 4)
    med = {k: _median([x["trials_per_hour"] for x in v]) for k, v in runs.items()}
    ratio = lambda a, b: round(med[a] / med[b], 3) if med[b] else None  # noqa: E731
    return {
        "cores": cores, "trials_per_run": n, "rounds": rounds, "runs": runs, "median_trials_per_hour": med,
        "default_vs_old_default_idle": ratio("b_idle", "a_idle"), "target_default_vs_old": 1.6,
        "default_idle_vs_busy": ratio("b_idle", "b_busy"), "target_idle_vs_busy_at_most": 2.2,
        "old_default_idle_vs_busy": ratio("a_idle", "a_busy"),
        "old_default_busy_passive_vs_spin": ratio("a_busy", "a_busy_spin"),
        "ray_vs_local": ratio("ray_idle", "b_idle"), "target_ray_vs_local": 0.8, "overhead": overhead_figures,
    }


SUITE = Suite("search", "trials per hour: workers x threads, idle and next to busy loops, passive vs spin waiting, "
                        "Ray vs local", run)

"""The strategy benchmark: exact against the closed form for random search, identical for the same seeds,
resumable, never counting a record twice, and the same curves on a table recorded from finished studies."""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from nas_harness.benchmark import (
    BenchmarkConfig,
    benchmark,
    best_so_far,
    curves,
    expected_best_without_replacement,
    hypervolume_curve,
    make_problem,
    mean_ranks,
    pairwise,
    run_one,
)
from nas_harness.errors import ConfigError
from nas_harness.tables import accel_nasbench


def test_the_closed_form_is_the_brute_force_expectation() -> None:
    v = np.array([0.3, 0.1, 0.7, 0.5, 0.2, 0.9])
    for n in range(1, 7):
        brute = np.mean([max(c) for c in itertools.combinations(v, n)])
        assert expected_best_without_replacement(v, n) == pytest.approx(brute, rel=1e-12)


def test_random_search_mean_best_so_far_agrees_with_the_exact_expectation() -> None:
    """400 seeds (random runs take milliseconds); the benchmark's own 95 % interval at 7 trial counts.  The seeds
    are fixed, so this is deterministic; with 40 seeds one of the 7 correlated checks falls just outside (as a
    95 % interval may), with 3,000-40,000 seeds the mean is within 1-2 standard errors of the closed form."""
    cfg = BenchmarkConfig(name="r", strategies=["random"], seeds=400, trials=64)
    problem = make_problem(cfg)
    runs = [run_one(problem, "random", seed, cfg.trials) for seed in range(cfg.seeds)]
    assert all(len(set(r["rows"])) == cfg.trials for r in runs)  # without replacement
    table = accel_nasbench()
    ref = table.best()[1]
    c = curves(runs, ["random"], ref, multi=False)
    for n in (1, 2, 4, 8, 16, 32, 64):
        exact = ref - expected_best_without_replacement(table.val_acc, n)
        assert c.low["random"][n - 1] <= exact <= c.high["random"][n - 1], n


def test_model_based_proposals_never_count_a_record_twice() -> None:
    problem = make_problem(BenchmarkConfig(name="m"))
    for s in ("tpe", "nsgaii"):
        run = run_one(problem, s, 1, 40)
        assert len(set(run["rows"])) == 40
        assert run["acc"] == [float(problem.table.val_acc[i]) for i in run["rows"]]


def test_hypervolume_is_exact_on_a_small_front() -> None:
    # normalised: points (cost, acc) = (0.5, 0.5) then (0.25, 0.25) then a dominated (0.75, 0.25)
    hv = hypervolume_curve([0.5, 0.25, 0.25, 1.0], [0.5, 0.25, 0.75, 1.0], (0.0, 1.0), (0.0, 1.0))
    assert hv.tolist() == [0.25, 0.25 + 0.0625, 0.3125, 0.3125]


def test_a_benchmark_is_identical_for_the_same_seeds_and_resumes(tmp_path: Path) -> None:
    d = {"name": "b", "strategies": ["random", "tpe", "nsgaii"], "seeds": 3, "trials": 25, "budgets": [10, 25],
         "workers": 2}
    a = benchmark(BenchmarkConfig(**d, results_dir=str(tmp_path / "a")), log=lambda s: None, figure=False)
    b = benchmark(BenchmarkConfig(**d, results_dir=str(tmp_path / "b")), log=lambda s: None, figure=False)
    key = lambda r: (r["strategy"], r["seed"], r["rows"], r["acc"])  # noqa: E731
    assert [key(r) for r in a.runs] == [key(r) for r in b.runs]
    for name in ("benchmark_curves.csv", "benchmark_pairs.csv", "benchmark.md"):
        assert (tmp_path / "a/b" / name).read_text() == (tmp_path / "b/b" / name).read_text()
    ranks = mean_ranks(a.curves, 25)
    assert sum(ranks.values()) == pytest.approx(6.0)  # 1 + 2 + 3 per seed
    # resume: a lost run (kill -9 mid-run leaves no file) is the only one computed again
    (tmp_path / "a/b/runs/tpe-1.json").unlink()
    lines: list[str] = []
    again = benchmark(BenchmarkConfig(**d, results_dir=str(tmp_path / "a")), log=lines.append, figure=False)
    assert any("8 of 9 runs stored" in s for s in lines) and any("1 runs x 25" in s for s in lines)
    assert [key(r) for r in again.runs] == [key(r) for r in a.runs]
    with pytest.raises(ConfigError, match="another benchmark setup"):
        benchmark(BenchmarkConfig(**{**d, "trials": 30}, results_dir=str(tmp_path / "a")), log=lambda s: None)
    rows = list(csv.DictReader((tmp_path / "a/b/benchmark_pairs.csv").open()))
    assert len(rows) == 2 * 3 and {r["verdict"] for r in rows} <= {"beats", "worse", "tied within noise"}
    assert all(r["in_words"] for r in rows)


def test_more_workers_than_cores_are_cut_to_the_cores_with_a_note(tmp_path: Path) -> None:
    from nas_harness.train.trainer import usable_cores

    lines: list[str] = []
    cfg = BenchmarkConfig(name="w", strategies=["random"], seeds=3, trials=5, workers=64, results_dir=str(tmp_path))
    benchmark(cfg, log=lines.append, figure=False)
    notes = [s for s in lines if s.startswith("note: workers = 64: ")]
    assert len(notes) == 1 and "oversubscribe" in notes[0], lines
    started = next(s for s in lines if "runs x 5 trials on" in s)
    assert f"on {min(3, usable_cores())} process(es)" in started, lines


def test_multi_objective_and_surrogate_runs(tmp_path: Path) -> None:
    cfg = BenchmarkConfig(name="p", objective="multi", cost="latency_zcu102", strategies=["random", "nsgaii"],
                          seeds=2, trials=20, workers=1, results_dir=str(tmp_path))
    res = benchmark(cfg, log=lambda s: None, figure=True)
    assert res.curves.metric == "hypervolume" and all(np.all(np.diff(v) >= 0) for v in
                                                       (res.curves.values["random"][0], res.curves.values["nsgaii"][1]))
    assert (tmp_path / "p" / "benchmark.png").is_file() and (tmp_path / "p" / "benchmark.html").is_file()
    sur = BenchmarkConfig(name="s", source="surrogate", strategies=["random", "tpe"], seeds=2, trials=12, workers=1,
                          results_dir=str(tmp_path))
    res = benchmark(sur, log=lambda s: None, figure=False)
    assert all(len(r["archs"]) == 12 for r in res.runs) and res.reference >= max(max(r["acc"]) for r in res.runs)
    assert np.all(res.curves.values["tpe"] >= 0)


def test_the_same_curves_on_a_table_recorded_from_finished_studies(tmp_path: Path) -> None:
    table = accel_nasbench()
    folder = tmp_path / "results" / "mine"
    folder.mkdir(parents=True)
    with (folder / "trials.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["number", "state", "arch", "val_acc", "macs", "params", "full_budget", "rejected"])
        for i in range(30):
            w.writerow([i, "COMPLETE", table.archs[i], table.val_acc[i], table.columns["macs"][i],
                        table.columns["params"][i], True, ""])
        w.writerow([30, "FAIL", table.archs[30], "", "", "", False, ""])
    cfg = BenchmarkConfig(name="rec", source="recorded", recorded=[str(folder)], strategies=["random", "tpe"],
                          seeds=3, trials=10, workers=1, results_dir=str(tmp_path))
    res = benchmark(cfg, log=lambda s: None, figure=False)
    assert len(res.problem.table) == 30 and res.reference == float(np.max(table.val_acc[:30]))
    assert best_so_far(res.runs[0]["acc"])[-1] <= res.reference
    stored = json.loads((tmp_path / "rec" / "runs" / "random-0.json").read_text())
    assert stored["fingerprint"] == cfg.fingerprint


def _runs(accs: dict[str, list[list[float]]], costs: list[float] | None = None) -> list[dict]:
    """Constructed runs: per strategy, one accuracy list per seed (seeds 0, 1, ...)."""
    return [{"strategy": s, "seed": k, "acc": acc, "cost": costs or [0.5] * len(acc)}
            for s, per_seed in accs.items() for k, acc in enumerate(per_seed)]


def test_intervals_respect_the_bounds_of_regret_and_hypervolume() -> None:
    """With 2 seeds a t interval of a mean regret of 1 pp reaches -11.7 pp; the benchmark clips it to [0, ...]
    (regret >= 0) and says so in the report; a normalised hypervolume stays within [0, 1]."""
    runs = _runs({"random": [[0.9, 0.9], [0.5, 0.88]], "tpe": [[0.6, 0.7], [0.5, 0.8]]})
    c = curves(runs, ["random", "tpe"], 0.9, multi=False)
    assert c.mean["random"][1] == pytest.approx(0.01)
    assert c.low["random"][1] == 0.0 and c.high["random"][1] == pytest.approx(0.01 + 12.7062 * 0.01, rel=1e-4)
    assert all((c.low[s] >= 0).all() and (c.high[s] <= 0.9).all() for s in c.strategies)
    hv = curves(_runs({"random": [[1.0], [0.9]], "tpe": [[0.2], [0.3]]}, [0.0]), ["random", "tpe"], 1.0,
                multi=True, acc_range=(0.0, 1.0), cost_range=(0.0, 1.0))
    assert hv.mean["random"][0] == pytest.approx(0.95) and hv.high["random"][0] == 1.0
    assert all((hv.low[s] >= 0).all() and (hv.high[s] <= 1).all() for s in hv.strategies)
    cfg = BenchmarkConfig(name="b", strategies=["random", "tpe"], seeds=2, trials=2, budgets=[2])
    from nas_harness.benchmark._report import document
    from nas_harness.report.document import to_markdown

    md = to_markdown(document(cfg, make_problem(cfg), c, pairwise(c, [2]), 0.9, [], None))
    assert "clipped to the range of regret" in md and "| random | 1 pp [0, 13.7] |" in md
    one = curves(_runs({"random": [[0.8, 0.9]], "tpe": [[0.7, 0.8]]}), ["random", "tpe"], 0.9, multi=False)
    assert np.isnan(one.low["random"]).all()  # one seed: no interval, not a degenerate one
    md = to_markdown(document(cfg, make_problem(cfg), one, pairwise(one, [2]), 0.9, [], None))
    assert "| random | 0 pp n/a (1 seed) |" in md and "undecided (one pair)" in md


def test_identical_and_constant_differences_are_not_called_tied_or_beats_bare() -> None:
    runs = _runs({"random": [[0.6, 0.8], [0.7, 0.75]], "tpe": [[0.6, 0.8], [0.7, 0.75]],
                  "nsgaii": [[0.5, 0.7], [0.6, 0.65]]})
    c = curves(runs, ["random", "tpe", "nsgaii"], 0.9, multi=False)
    said = {(x.a, x.b): x.sentence() for x in pairwise(c, [2])}
    assert said["random", "tpe"] == "random vs tpe at 2 trials: identical on all 2 seeds (difference 0)"
    assert said["random", "nsgaii"] == ("random vs nsgaii at 2 trials: best accuracy +10.00 pp: beats on all 2 "
                                        "seeds by the same margin (zero-width interval: no noise measured)")
    assert "[" not in said["tpe", "nsgaii"]  # no zero-width "[10, 10]"
    import tempfile

    from nas_harness.benchmark._report import write_csv

    with tempfile.TemporaryDirectory() as d:  # the CSV keeps the rule's word and adds the report's wording
        rows = list(csv.DictReader(write_csv(c, pairwise(c, [2]), Path(d))[1].open()))
        same = next(r for r in rows if (r["a"], r["b"]) == ("random", "tpe"))
        assert same["verdict"] == "tied within noise" and same["in_words"] == "identical on all 2 seeds (difference 0)"
    noisy = curves(_runs({"random": [[0.6, 0.8], [0.7, 0.75], [0.6, 0.7]], "tpe": [[0.6, 0.7], [0.7, 0.8],
                                                                                [0.6, 0.72]]}),
                   ["random", "tpe"], 0.9, multi=False)
    # the sentence names what the difference is of (the table beside it shows regret), in fixed decimals
    assert pairwise(noisy, [2])[0].sentence().startswith("random and tpe are tied within noise at 2 trials: best "
                                                         "accuracy random - tpe +1.00 pp [")

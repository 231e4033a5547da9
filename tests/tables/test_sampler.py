"""Table studies search the table's records: proposals mapped onto the nearest unseen record (the benchmark's rule,
one code path), each record at most once, the stored parameters those of the arch evaluated; a table cost
(``objective.cost = "table:..."``) is what the study minimises, stores and plots."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import optuna
import pytest
from helpers.studies import tiny_dict

from nas_harness.arch import parse_arch
from nas_harness.benchmark import BenchmarkConfig, make_problem, run_one
from nas_harness.results import pareto_front, study_cost, study_frame
from nas_harness.study.config import validate
from nas_harness.study.search import run_search
from nas_harness.tables import ROW_KEY, RecordSampler, accel_nasbench, accel_nasbench_space, nearest_unseen

SPACE = {"kernels": [3, 5], "expands": [1, 4, 6], "se": [True, False],
         "stages": {str(i): {"repeats": [1, 2, 3, 4] if i == 6 else [1, 2, 3]} for i in range(1, 8)}}


def _table_study(tmp_path: Path, name: str, **kw: object) -> dict:
    d = tiny_dict(tmp_path, base_width=1.0, base_depth=1.0, space=SPACE, evaluator={"kind": "table"}, **kw)
    d["name"] = name
    return d


def _trials(cfg) -> list:  # type: ignore[no-untyped-def]
    return optuna.load_study(study_name=cfg.name, storage=cfg.storage_url).trials


def test_nearest_unseen_is_the_hamming_nearest_record_not_taken() -> None:
    F = np.array([[3, 1, 0], [5, 1, 0], [5, 6, 1], [3, 6, 1]], dtype=float)
    none, first = np.zeros(4, dtype=bool), np.array([True, False, False, False])
    rng = np.random.default_rng(0)
    assert nearest_unseen(F, np.array([5.0, 1.0, 0.0]), none, rng) == 1  # the record itself
    assert nearest_unseen(F, np.array([3.0, 1.0, 0.0]), first, rng) == 1  # distances 1, 3, 2 to rows 1-3
    x = np.array([3.0, 6.0, 0.0])  # one choice away from rows 0 and 3, two from rows 1 and 2
    assert {nearest_unseen(F, x, none, np.random.default_rng(s)) for s in range(20)} == {0, 3}  # ties at random
    assert len({nearest_unseen(F, x, none, np.random.default_rng(7)) for _ in range(5)}) == 1  # ... seeded
    assert nearest_unseen(F, x, first, rng) == 3


def test_a_table_study_searches_the_records_each_once_with_the_records_params(tmp_path: Path) -> None:
    table = accel_nasbench()
    cfg = validate(_table_study(tmp_path, "anb-tpe", sampler={"kind": "tpe", "n_startup_trials": 4},
                                objective={"kind": "multi", "cost": "table:latency_zcu102"},
                                run={"n_trials": 12, "plots": True}))
    assert run_search(cfg).n_complete == 12
    space = cfg.search_space()
    rows = []
    for t in _trials(cfg):
        arch = parse_arch(t.user_attrs["arch"])
        i = table.index(arch)
        assert i is not None and t.system_attrs[ROW_KEY] == i  # a record, and the one the sampler chose
        assert t.params == space.params_of(arch)  # what the sampler learns from is what was evaluated
        assert t.values == [table.row(i)["val_acc"], table.row(i)["latency_zcu102"]]
        rows.append(i)
    assert len(set(rows)) == 12
    df = study_frame(cfg.storage_url, study_name=cfg.name)
    assert study_cost(df) == "latency_zcu102" and df["latency_zcu102"].notna().all()
    assert set(pareto_front(df, "latency_zcu102")["number"]) == {t.number for t in optuna.load_study(
        study_name=cfg.name, storage=cfg.storage_url).best_trials}
    assert (cfg.study_dir / "figures" / "accuracy_vs_latency_zcu102.png").is_file()
    assert "latency_zcu102" in (cfg.study_dir / "trials.csv").read_text().splitlines()[0].split(",")


def test_random_search_on_a_table_study_is_the_benchmarks_draw_without_replacement(tmp_path: Path) -> None:
    """The study and `nas-harness benchmark` follow one rule: a random study takes the benchmark's random rows;
    re-running continues without repeating a record.  Throughput is minimised as ms per image (1000 / images/s),
    and records without that measurement are never proposed."""
    table = accel_nasbench()
    d = _table_study(tmp_path, "anb-random", seed=5, sampler={"kind": "random"},
                     objective={"kind": "multi", "cost": "table:throughput_tpuv3"}, run={"n_trials": 6})
    run_search(validate(d))
    d["run"]["n_trials"] = 9
    cfg = validate(d)
    run_search(cfg)
    trials = _trials(cfg)
    rows = [t.system_attrs[ROW_KEY] for t in trials]
    assert len(set(rows)) == 9
    measured = ~np.isnan(table.columns["throughput_tpuv3"])
    bench = run_one(make_problem(BenchmarkConfig(name="r")), "random", 5, 40)["rows"]
    assert rows[:6] == [i for i in bench if measured[i]][:6]
    for t in trials:
        i = t.system_attrs[ROW_KEY]
        assert t.values[1] == pytest.approx(1000.0 / table.columns["throughput_tpuv3"][i], rel=1e-12)
        assert t.user_attrs["ms_per_image_tpuv3"] == t.values[1] and t.user_attrs["throughput_tpuv3"] > 0


def test_every_record_once_then_proposals_are_not_mapped() -> None:
    """Three records left (the rest excluded): three trials take exactly those, in any order; the fourth finds
    none left and keeps the sampler's own proposal."""
    table = accel_nasbench()
    space = accel_nasbench_space()
    keep = [10, 2000, 4000]
    exclude = np.ones(len(table), dtype=bool)
    exclude[keep] = False
    sampler = RecordSampler.for_space(optuna.samplers.TPESampler(seed=0, n_startup_trials=1), table, space, 0,
                                      exclude=exclude)
    study = optuna.create_study(sampler=sampler, direction="maximize")
    got = []
    for _ in range(4):
        trial = study.ask()
        arch = space.suggest(trial)
        got.append(table.index(arch))
        study.tell(trial, float(np.random.default_rng(len(got)).random()))
    assert sorted(got[:3]) == keep
    assert ROW_KEY not in study.trials[3].system_attrs
    again = pickle.loads(pickle.dumps(sampler))  # a Ray searcher holding it may be saved
    assert again.taken(study).sum() == len(table)


def test_an_enqueued_record_is_taken_and_an_over_budget_record_is_rejected_with_its_table_cost(tmp_path: Path
                                                                                                 ) -> None:
    table = accel_nasbench()
    small = int(np.argmin(table.columns["params"]))
    big = int(np.argmax(table.columns["params"]))
    cfg = validate(_table_study(tmp_path, "anb-budget", sampler={"kind": "random", "enqueue": [table.archs[big],
                                                                                               table.archs[small]]},
                                objective={"kind": "multi", "cost": "table:latency_vck190", "max_params": 3e6},
                                run={"n_trials": 4}))
    run_search(cfg)
    trials = _trials(cfg)
    rows = [table.index(parse_arch(t.user_attrs["arch"])) for t in trials]
    assert rows[:2] == [big, small] and len(set(rows)) == 4  # enqueued records are never proposed again
    assert trials[0].user_attrs["rejected"] == "over_budget"
    assert trials[0].values == [0.0, table.row(big)["latency_vck190"]]  # known before evaluating: not looked up
    assert trials[1].values == [table.row(small)["val_acc"], table.row(small)["latency_vck190"]]


@pytest.mark.ray
@pytest.mark.slow
def test_a_table_study_on_ray(tmp_path: Path, ray_local: None) -> None:
    table = accel_nasbench()
    d = _table_study(tmp_path, "anb-ray", sampler={"kind": "tpe", "n_startup_trials": 2},
                     objective={"kind": "multi", "cost": "table:macs_thop"}, run={"n_trials": 5},
                     ray={"cpus_per_trial": 1.0, "max_concurrent": 2})
    d["run"]["backend"] = "ray"
    cfg = validate(d)
    assert run_search(cfg).n_complete == 5
    trials = _trials(cfg)
    rows = [t.system_attrs[ROW_KEY] for t in trials]
    assert len(set(rows)) == 5
    for t, i in zip(trials, rows):
        assert t.user_attrs["backend"] == "ray" and t.user_attrs["arch"] == table.archs[i]
        assert t.values == [table.row(i)["val_acc"], table.row(i)["macs_thop"]]


@pytest.mark.slow
def test_two_workers_never_take_the_same_record(tmp_path: Path) -> None:
    """Two worker processes on one table study (each trial takes milliseconds, so they ask all the time): every
    record is chosen inside study.ask(), under the study's lock, so none is taken twice."""
    cfg = validate(_table_study(tmp_path, "anb-workers", sampler={"kind": "tpe", "n_startup_trials": 3},
                                objective={"kind": "accuracy"}, run={"n_trials": 16, "workers": 2}))
    summary = run_search(cfg)
    assert summary.workers == 2 and summary.n_complete == 16
    rows = [t.system_attrs[ROW_KEY] for t in _trials(cfg)]
    assert len(rows) == 16 and len(set(rows)) == 16


def test_the_shipped_table_study_minimises_the_tables_fpga_latency() -> None:
    from nas_harness.study.config import load_study

    cfg = load_study(Path(__file__).resolve().parents[2] / "studies" / "accel_nasbench_table.toml")
    assert cfg.evaluator.kind == "table" and cfg.sampler.table == "accel_nasbench"
    assert cfg.objective.metric_names == ["val_acc", "latency_zcu102"]

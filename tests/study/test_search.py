"""End-to-end local studies on tiny settings: every objective and sampler, pruning, cache, failures, resume."""

from __future__ import annotations

import json
import math
from pathlib import Path

import optuna
import pytest
from helpers.studies import tiny_dict, write_study
from optuna.trial import TrialState

from nas_harness.cli import main
from nas_harness.study.config import validate
from nas_harness.study.search import run_search
from nas_harness.trial import library_versions

CONTRACT_ATTRS = {"arch", "macs", "params", "val_acc", "val_acc_final", "epochs", "epochs_planned", "full_budget",
                  "wall_time_s", "images_per_s", "device", "seed", "versions", "cached", "macs_resolution"}


def _load(cfg) -> optuna.Study:
    return optuna.load_study(study_name=cfg.name, storage=cfg.storage_url)


@pytest.mark.slow
def test_reward_tpe_study_records_contract(tmp_path: Path) -> None:
    cfg = validate(tiny_dict(tmp_path, sampler={"enqueue": ["base"]}, run={"n_trials": 3}))
    summary = run_search(cfg)
    study = _load(cfg)
    assert summary.n_complete == 3 and summary.n_fail == 0
    assert study.user_attrs["objective"] == "reward" and study.user_attrs["metric_names"] == ["reward"]
    assert study.user_attrs["config"]["name"] == "tiny"
    t0 = study.trials[0]
    assert t0.user_attrs["reference"] == "base"
    for t in study.trials:
        ua = t.user_attrs
        assert set(ua) >= CONTRACT_ATTRS, CONTRACT_ATTRS - set(ua)
        assert ua["versions"]["torch"] == library_versions()["torch"]
        assert ua["full_budget"] is True and ua["epochs"] == ua["epochs_planned"] == 1
        assert 0.0 <= ua["val_acc"] <= 1.0
        # the objective value is the MnasNet reward of the recorded accuracy and MACs
        expected = ua["val_acc"] * (ua["macs"] / 10e6) ** -0.07
        assert t.value == pytest.approx(expected) == pytest.approx(ua["reward"])
        assert set(t.params) == {f"s{i}_{f}" for i in range(1, 8)
                                 for f in ("kernel", "expand", "se", "repeats", "width")}
    assert (cfg.study_dir / "trials.csv").is_file()
    # re-running the finished study does nothing new
    again = run_search(cfg)
    assert again.n_complete == 3 and len(_load(cfg).trials) == 3


@pytest.mark.slow
def test_budget_random_rejects_over_budget_before_training(tmp_path: Path) -> None:
    # base-nose is cheaper than base; put the budget between them: base is rejected, base-nose is trained
    from nas_harness.study.config import validate as v

    probe = v(tiny_dict(tmp_path))
    from nas_harness.study.samplers import project_params, reference_arch
    from nas_harness.trial import TrialSpec, analytic_cost

    space = probe.search_space()
    macs = {}
    for name in ("base", "base-nose"):
        arch = space.arch_from_params(project_params(space, reference_arch(name, space.base)))
        macs[name] = analytic_cost(TrialSpec(arch, probe.proxy_config(), probe.train_config()))[0]
    budget = (macs["base"] + macs["base-nose"]) / 2
    cfg = validate(tiny_dict(tmp_path, objective={"kind": "budget", "max_macs": budget},
                             sampler={"kind": "random", "enqueue": ["base", "base-nose"]}, run={"n_trials": 2}))
    run_search(cfg)
    study = _load(cfg)
    rejected, trained = study.trials[0], study.trials[1]
    assert rejected.user_attrs["rejected"] == "over_budget" and rejected.user_attrs["epochs"] == 0
    assert rejected.user_attrs["wall_time_s"] < 1.0  # no training happened
    assert rejected.system_attrs["constraints"][0] > 0
    assert "rejected" not in trained.user_attrs and trained.user_attrs["epochs"] == 1
    assert trained.system_attrs["constraints"][0] <= 0
    assert study.best_trial.number == trained.number
    # shown apart from pruned trials: no accuracy, its own outcome, its own count in the summary
    from nas_harness.results import study_frame

    df = study_frame(cfg.storage_url, study_name=cfg.name)
    row = df[df["number"] == rejected.number].iloc[0]
    assert row["outcome"] == "rejected: over budget" and math.isnan(row["val_acc"]) and not row["full_budget"]
    assert run_search(cfg).n_rejected == 1


@pytest.mark.slow
def test_multi_nsgaii_pareto(tmp_path: Path) -> None:
    cfg = validate(tiny_dict(tmp_path, objective={"kind": "multi"},
                             sampler={"kind": "nsgaii", "population_size": 2}, run={"n_trials": 3}))
    summary = run_search(cfg)
    study = _load(cfg)
    assert study.user_attrs["metric_names"] == ["val_acc", "macs"]
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    for t in study.trials:
        assert t.values == [pytest.approx(t.user_attrs["val_acc"]), t.user_attrs["macs"]]
    assert 1 <= len(summary.best) <= 3


@pytest.mark.slow
def test_grid_sampler_and_result_cache(tmp_path: Path) -> None:
    # a 2-arch space: 3 trials must repeat an arch, which is served from the cache, not retrained
    space = {"kernels": [3], "expands": [3], "se": [True, False], "repeats_delta": 0,
             "stages": {str(i): {"se": [True]} for i in range(2, 8)}}
    cfg = validate(tiny_dict(tmp_path, space=space, sampler={"kind": "random"}, run={"n_trials": 4}))
    run_search(cfg)
    trials = _load(cfg).trials
    by_arch: dict[str, list] = {}
    for t in trials:
        by_arch.setdefault(t.user_attrs["arch"], []).append(t)
    assert len(by_arch) == 2
    for same in by_arch.values():
        assert [t.user_attrs["cached"] for t in same] == [False] + [True] * (len(same) - 1)
        assert len({t.user_attrs["val_acc"] for t in same}) == 1
    # grid over the same 2-arch space: exactly both archs, then the sampler stops the study
    gcfg = validate(tiny_dict(tmp_path, name="grid", space=space, sampler={"kind": "grid"}, run={"n_trials": 5}))
    run_search(gcfg)
    gtrials = _load(gcfg).trials
    assert sorted(t.user_attrs["arch"] for t in gtrials) == sorted(by_arch)
    assert all(t.user_attrs["cached"] is False for t in gtrials)  # cache is per study folder


@pytest.mark.slow
def test_median_pruner_prunes_and_records_epochs(tmp_path: Path) -> None:
    cfg = validate(tiny_dict(tmp_path, train={"epochs": 3}, sampler={"kind": "random"},
                             pruner={"kind": "median", "startup_trials": 1, "warmup_epochs": 0},
                             trial={"cache": False}, run={"n_trials": 5}))
    run_search(cfg)
    trials = _load(cfg).trials
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert complete and all(t.user_attrs["full_budget"] and t.user_attrs["epochs"] == 3 for t in complete)
    for t in pruned:
        assert t.user_attrs["full_budget"] is False and t.user_attrs["epochs"] < 3
        assert len(t.intermediate_values) == t.user_attrs["epochs"]
    assert pruned, "the median pruner should stop at least one of 4 post-startup trials"


@pytest.mark.slow
def test_failing_trial_is_recorded_and_study_goes_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nas_harness.backends import _task
    from nas_harness.errors import NonFiniteLossError

    real = _task.run_trial
    calls = {"n": 0}

    def flaky(spec, report=None, cache=None):
        calls["n"] += 1
        if calls["n"] == 1:
            raise NonFiniteLossError(step=3, loss=math.nan)
        return real(spec, report=report, cache=cache)

    monkeypatch.setattr(_task, "run_trial", flaky)
    cfg = validate(tiny_dict(tmp_path, run={"n_trials": 2}))
    summary = run_search(cfg)
    trials = _load(cfg).trials
    assert trials[0].state == TrialState.FAIL
    assert trials[0].user_attrs["fail_reason"] == "NonFiniteLossError: non-finite loss nan at step 3"
    assert trials[0].user_attrs["macs"] > 0  # cost recorded even for failures
    # a failed trial does not count: the study still reaches n_trials finished trials in the same run
    assert summary.n_complete == 2 and summary.n_fail == 1
    # the failure is not retried (only interrupted trials are), and a re-run has nothing to do
    assert run_search(cfg).ran == 0
    states = [t.state for t in _load(cfg).trials]
    assert states.count(TrialState.COMPLETE) == 2 and states.count(TrialState.FAIL) == 1


@pytest.mark.slow
def test_cli_search_and_check(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = write_study(tmp_path, run={"n_trials": 1, "progress": False, "plots": False})
    assert main(["search", str(path), "--check"]) == 0
    assert not (tmp_path / "results").exists()
    assert main(["search", str(path), "--n-trials", "2", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "study tiny: 2 complete, 0 pruned, 0 failed" in out
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path / 'results/tiny/study.db'}")
    assert study.user_attrs["config"]["seed"] == 1 and study.trials[0].user_attrs["seed"] == 1


@pytest.mark.parametrize(("sections", "flags", "words"), [
    ({"data": {"val_size": 100_000}}, [], ["val_size"]),
    ({"data": {"dataset": "fashion_mnist", "root": "/nonexistent/fmnist", "channels": 1}}, [], ["/nonexistent/fmnist"]),
    ({}, ["--storage", "postgresql://nas@127.0.0.1:1/nas"], ["run.storage", "127.0.0.1"]),
    ({}, ["--device", "cuda:7"], ["cuda"]),
])
def test_check_refuses_what_the_run_would_refuse(tmp_path: Path, capsys: pytest.CaptureFixture, sections: dict,
                                                 flags: list[str], words: list[str]) -> None:
    """`search --check` runs every check the run makes before it writes: data and splits, storage, devices."""
    if "--device" in flags:
        import torch

        if torch.cuda.device_count() > 7:
            pytest.skip("this machine has a cuda:7")
    path = write_study(tmp_path, **sections)
    assert main(["search", str(path), "--check", *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nas-harness search: error: "), err
    assert all(w in err[0] for w in words), err[0]
    assert not (tmp_path / "results").exists()


def test_check_prints_one_line_unless_the_config_is_asked_for(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`search --check` says its verdict in one line; the resolved study file only with --show-config."""
    path = write_study(tmp_path)
    assert main(["search", str(path), "--check"]) == 0
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1 and err.startswith(f"ok: {path} is a valid study")
    assert main(["search", str(path), "--check", "--show-config"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["name"] == "tiny" and err.startswith("ok: ")
    assert main(["search", str(path), "--show-config"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--show-config" in err[0]
    assert not (tmp_path / "results").exists()


def test_a_continued_study_draws_new_archs(tmp_path: Path) -> None:
    """A resumed run's sampler is seeded past the trials the study holds: it does not re-draw the first run's
    archs (found by a fresh user: 6 'finished' trials held 4 distinct archs)."""
    d = tiny_dict(tmp_path, sampler={"kind": "random"}, run={"n_trials": 3})
    run_search(validate(d))
    d["run"]["n_trials"] = 6
    cfg = validate(d)
    run_search(cfg)
    archs = [t.user_attrs["arch"] for t in optuna.load_study(study_name=cfg.name, storage=cfg.storage_url).trials]
    assert len(archs) == 6 and not set(archs[:3]) & set(archs[3:])


def test_two_runs_on_one_study_claim_different_sampler_streams(tmp_path: Path) -> None:
    """Two commands started together on one study (both see 0 trials) must not seed their samplers alike, or
    they propose the same archs and train them twice; a new study's first run still samples as before."""
    from nas_harness.records import open_storage
    from nas_harness.study.search import build_task, claim_sampler_streams, open_study

    cfg = validate(tiny_dict(tmp_path, run={"workers": 2}))
    cfg.study_dir.mkdir(parents=True, exist_ok=True)
    study, threads = open_study(cfg, open_storage(cfg.storage_url))
    assert build_task(cfg, threads).sampler_offset == 0
    first = claim_sampler_streams(study, cfg, 2)
    second = claim_sampler_streams(study, cfg, 2)  # the concurrent command, before any trial exists
    assert (first, second) == (0, 2)
    for _ in range(5):
        study.enqueue_trial({})
    assert claim_sampler_streams(study, cfg, 2) == 5  # a continued study: past the trials it holds


def test_a_table_study_outside_the_tables_space_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    path = write_study(tmp_path, evaluator={"kind": "table"}, table={"name": "accel_nasbench"})
    assert main(["search", str(path), "--check"]) == 2
    assert main(["search", str(path)]) == 2
    assert not (tmp_path / "results").exists()  # no study left behind to block the corrected file


@pytest.mark.parametrize(("attrs", "value", "message"), [
    ({"val_acc": 1.5}, 0.5, r"trial 0: stored val_acc = 1\.5 is not a number in \[0, 1\]"),
    ({}, float("inf"), r"trial 0: stored value = inf is not a finite number"),
    ({"arch": "stem_c8_s2,garbage"}, 0.5, r"trial 0: stored arch = 'stem_c8_s2,garbage' is not an arch string"),
])
def test_a_study_with_a_tampered_trial_is_not_continued(tmp_path: Path, attrs: dict, value: float,
                                                         message: str) -> None:
    from nas_harness.errors import ConfigError
    from nas_harness.records import open_storage
    from nas_harness.study.search import open_study

    cfg = validate(tiny_dict(tmp_path, objective={"kind": "accuracy"}))
    cfg.study_dir.mkdir(parents=True, exist_ok=True)
    study, _ = open_study(cfg, open_storage(cfg.storage_url))
    base = str(cfg.search_space().base)
    study.add_trial(optuna.trial.create_trial(value=value, user_attrs={"arch": base, "val_acc": 0.5, **attrs}))
    with pytest.raises(ConfigError, match=r"^storage sqlite:///.*: study 'tiny', " + message):
        open_study(cfg, open_storage(cfg.storage_url))


def test_readers_refuse_a_tampered_arch_string(tmp_path: Path) -> None:
    from nas_harness.errors import ConfigError
    from nas_harness.records import open_storage
    from nas_harness.results.frame import trials_frame
    from nas_harness.study.search import open_study

    cfg = validate(tiny_dict(tmp_path, objective={"kind": "accuracy"}))
    cfg.study_dir.mkdir(parents=True, exist_ok=True)
    study, _ = open_study(cfg, open_storage(cfg.storage_url))
    study.add_trial(optuna.trial.create_trial(value=0.5, user_attrs={"arch": "garbage", "val_acc": 0.5}))
    with pytest.raises(ConfigError, match=r"trial 0: stored arch = 'garbage' is not an arch string"):
        trials_frame(study)  # what report, plot and export read
    assert main(["report", str(cfg.study_dir)]) == 2

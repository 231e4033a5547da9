"""Each objective with cost = "latency" end to end on a tiny study (synthetic data, 16 px training, latency at
32 px with few repeats), local and on Ray; latency recorded with every trial, figures and report on latency."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from helpers.studies import tiny_dict, write_study
from optuna.trial import TrialState

from nas_harness.cli import main
from nas_harness.errors import ConfigError
from nas_harness.latency import LatencyTable, predictor_for
from nas_harness.study.config import validate
from nas_harness.study.search import run_search

LAT = {"resolution": 32, "repeats": 3, "warmup": 1, "memory_format": "channels_last"}
REWARD = {"kind": "reward", "cost": "latency", "target_ms": 2.0, "target_macs": None}


def _trials(cfg) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=cfg.name, storage=cfg.storage_url).trials


def _table(cfg) -> LatencyTable:
    files = list(Path(cfg.latency_settings().table).glob("*.json"))
    assert len(files) == 1, files
    return LatencyTable.read(files[0])


@pytest.mark.slow
def test_reward_on_latency(tmp_path: Path) -> None:
    cfg = validate(tiny_dict(tmp_path, objective=REWARD, latency=LAT, sampler={"enqueue": ["base"]},
                             run={"n_trials": 3}))
    summary = run_search(cfg)
    assert summary.n_complete == 3
    study = optuna.load_study(study_name=cfg.name, storage=cfg.storage_url)
    assert study.user_attrs["comparable"]["latency"]["resolution"] == 32
    for t in study.trials:
        ua = t.user_attrs
        assert ua["latency_ms"] > 0 and ua["latency_device"].startswith("cpu-")
        expected = ua["val_acc"] * (ua["latency_ms"] / 2.0) ** -0.07
        assert t.value == pytest.approx(expected) == pytest.approx(ua["reward"])
    # the table holds every entry the trials needed (plus the lazily fitted overhead), shared under results/latency
    table = _table(cfg)
    assert table.fits[cfg.latency_settings().context]["n_networks"] >= 1
    predictor = predictor_for(cfg.latency_settings())
    for t in study.trials:
        from nas_harness.arch import parse_arch

        assert predictor.predict(parse_arch(t.user_attrs["arch"]), fill=False).total_ms == pytest.approx(
            t.user_attrs["latency_ms"])
    # another device/batch is another experiment
    d = tiny_dict(tmp_path, objective=REWARD, latency={**LAT, "batch": 2}, run={"n_trials": 3})
    with pytest.raises(ConfigError, match=r"^latency\.batch: study 'tiny' .* was created with 1, this run has 2"):
        run_search(validate(d))


@pytest.mark.slow
def test_budget_on_latency_rejects_before_training(tmp_path: Path) -> None:
    # predict the two enqueued archs with the study's own settings first, then put the budget between them
    probe = validate(tiny_dict(tmp_path, objective={"kind": "budget", "cost": "latency", "max_latency_ms": 1e6},
                               latency=LAT))
    from nas_harness.study.samplers import project_params, reference_arch

    space = probe.search_space()
    predictor = predictor_for(probe.latency_settings())
    predictor.ensure_fit(space.sample, seed=probe.seed)
    ms = {name: predictor.predict(space.arch_from_params(project_params(space, reference_arch(name, space.base))))
          .total_ms for name in ("base", "base-nose")}
    assert ms["base"] != ms["base-nose"]
    slow = max(ms, key=ms.get)
    budget = sum(ms.values()) / 2
    cfg = validate(tiny_dict(tmp_path, objective={"kind": "budget", "cost": "latency", "max_latency_ms": budget},
                             latency=LAT, sampler={"kind": "random", "enqueue": ["base", "base-nose"]},
                             run={"n_trials": 2}))
    run_search(cfg)
    trials = _trials(cfg)
    by_name = {t.user_attrs["reference"]: t for t in trials}
    rejected, trained = by_name[slow], by_name["base" if slow == "base-nose" else "base-nose"]
    assert rejected.user_attrs["rejected"] == "over_budget" and rejected.user_attrs["epochs"] == 0
    assert rejected.system_attrs["constraints"][0] > 0 and rejected.user_attrs["latency_ms"] > budget
    assert "rejected" not in trained.user_attrs and trained.user_attrs["epochs"] == 1
    assert trained.system_attrs["constraints"][0] <= 0 and trained.user_attrs["latency_ms"] <= budget


@pytest.mark.slow
def test_multi_on_latency_with_figures_and_report(tmp_path: Path) -> None:
    cfg = validate(tiny_dict(tmp_path, objective={"kind": "multi", "cost": "latency"}, latency=LAT,
                             sampler={"kind": "random", "enqueue": ["base"]}, run={"n_trials": 3}))
    run_search(cfg)
    study = optuna.load_study(study_name=cfg.name, storage=cfg.storage_url)
    assert study.user_attrs["metric_names"] == ["val_acc", "latency_ms"]
    for t in study.trials:
        assert t.state == TrialState.COMPLETE
        assert t.values == [pytest.approx(t.user_attrs["val_acc"]), pytest.approx(t.user_attrs["latency_ms"])]
    from nas_harness.plots import write_study_figures
    from nas_harness.report import write_report

    figs = write_study_figures(cfg.study_dir, formats=("png",))
    assert any(p.name == "accuracy_vs_latency.png" for p in figs)
    paths = write_report(cfg.study_dir, figures=False)
    text = paths.markdown.read_text()
    assert "minimise latency" in text and "latency ms" in text and " ms" in text.split("Result at a glance")[1]


@pytest.mark.slow
def test_latency_table_without_latency_cost_records_latency(tmp_path: Path) -> None:
    cfg = validate(tiny_dict(tmp_path, latency=LAT, run={"n_trials": 1}))
    run_search(cfg)
    (t,) = _trials(cfg)
    assert t.user_attrs["latency_ms"] > 0 and "latency" not in optuna.load_study(
        study_name=cfg.name, storage=cfg.storage_url).user_attrs["comparable"]


def test_cuda_latency_exits_2_before_anything_is_written(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    path = write_study(tmp_path, objective=REWARD, latency={"device": "cuda:0"})
    assert main(["search", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "latency.device = 'cuda:0' but this machine has no CUDA device" in err
    assert not (tmp_path / "results").exists()


@pytest.mark.ray
@pytest.mark.slow
def test_reward_on_latency_on_ray(tmp_path: Path, ray_local: None) -> None:
    cfg = validate(tiny_dict(tmp_path, objective=REWARD, latency=LAT, sampler={"kind": "random"},
                             run={"n_trials": 2, "backend": "ray"}, ray={"cpus_per_trial": 1.0, "max_concurrent": 2}))
    summary = run_search(cfg)
    assert summary.n_complete == 2
    for t in _trials(cfg):
        ua = t.user_attrs
        assert ua["backend"] == "ray" and ua["latency_ms"] > 0
        assert t.value == pytest.approx(ua["val_acc"] * (ua["latency_ms"] / 2.0) ** -0.07)
    # the Ray workers (other processes, other working folders) wrote the study's one table
    doc = json.loads(next(Path(cfg.latency_settings().table).glob("*.json")).read_text())
    assert doc["entries"] and doc["fits"]

"""Benchmark registry, the conventional baseline pipeline, the flops suite and the bench CLI."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from nas_harness.bench import Suite, run_suites, suites
from nas_harness.cli import main
from nas_harness.data import ProxyConfig, load_proxy
from nas_harness.errors import ConfigError
from nas_harness.train.augment import BatchMaker
from nas_harness.train.conventional import PerSampleDataset, train_conventional


def test_registry_discovers_suites():
    found = suites()
    assert {"trainer", "flops"} <= set(found)
    assert all(isinstance(s, Suite) and s.name == n for n, s in found.items())
    with pytest.raises(ConfigError, match="unknown"):
        run_suites(["nope"])


def test_conventional_dataset_matches_trainer_preprocessing():
    data = load_proxy(ProxyConfig(dataset="synthetic", resolution=16))
    ds = PerSampleDataset(data.train_x, data.train_y, data.mean, data.std, augment=False)
    maker = BatchMaker(data.train_x, data.mean, data.std, torch.device("cpu"), False)
    x0, y0 = ds[5]
    assert y0 == int(data.train_y[5])
    torch.testing.assert_close(x0, maker.train_batch(torch.tensor([5]))[0])
    aug = PerSampleDataset(data.train_x, data.train_y, data.mean, data.std)
    assert aug[5][0].shape == (3, 16, 16)


def test_conventional_loop_trains():
    data = load_proxy(ProxyConfig(dataset="synthetic", resolution=16))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(8, 10))
    res = train_conventional(model, data, steps=5, batch_size=32)
    assert res["steps"] == 5 and res["images_per_s"] > 0


@pytest.mark.slow
def test_flops_suite_and_cli(tmp_path):
    out = tmp_path / "bench.json"
    assert main(["bench", "--suite", "flops", "--quick", "--out", str(out)]) == 0
    figures = json.loads(out.read_text())
    cases = figures["suites"]["flops"]["cases"]
    assert {c["case"] for c in cases} >= {"b0_224", "b0_w0.5_proxy32"}
    for c in cases:
        assert c["speed_ratio"] > 1 and c["rel_diff"] < 0.05 and c["analytic_macs"] > 0
    assert figures["machine"]["cpu_cores"] >= 1


@pytest.mark.slow
def test_trainer_suite_figures_are_consistent(monkeypatch):
    from nas_harness.bench import trainer as trainer_suite

    monkeypatch.setattr(trainer_suite, "STEPS", {True: 2, False: 2})
    r = trainer_suite.run(quick=True)
    runs = r["runs"]
    assert r["conventional_images_per_s"] == runs["conventional"][0] > 0
    assert r["trainer_images_per_s"] == runs["trainer"][0] > 0
    assert r["ratio"] == pytest.approx(r["trainer_images_per_s"] / r["conventional_images_per_s"])
    assert r["ratio"] == pytest.approx(r["ratio_from_model_kernels"] * r["ratio_from_data_path_and_layout"])
    assert r["steps"] == 2 and r["batch_size"] == 128 and r["resolution"] == 32
    from nas_harness.kernels import available

    assert r["native_kernels"] is available()  # True wherever a C compiler exists (CI has gcc)
    assert r["device"] == "cpu" and r["conventional_loader_workers"] == 0


def test_cli_unknown_suite_exits_2(tmp_path, capsys):
    assert main(["bench", "--suite", "nope", "--out", str(tmp_path / "x.json")]) == 2
    assert "unknown" in capsys.readouterr().err

"""The predictor on tiny archs: prediction = Σ entries + fitted overhead, entries measured once and reused,
space-wide keys cover every member, the overhead fit, and bad input."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from nas_harness.errors import ConfigError
from nas_harness.latency import (
    LatencyPredictor,
    LatencySettings,
    LatencyTable,
    block_module,
    fit_overhead,
    network_keys,
    predictor_for,
    space_keys,
)
from nas_harness.space import SearchSpace


def test_prediction_is_the_sum_of_its_entries(tiny_arch, settings: LatencySettings) -> None:
    p = LatencyPredictor(settings)
    pred = p.predict(tiny_arch)
    keys = network_keys(tiny_arch, settings)
    assert [k for k, _ in pred.parts] == [str(k) for k in keys]
    assert pred.blocks_ms == pytest.approx(sum(p.table.entries[str(k)].ms for k in keys))
    assert pred.total_ms == pred.blocks_ms and pred.overhead_ms == 0 and not pred.fitted  # no fit yet
    assert sum(pred.by_kind().values()) == pytest.approx(pred.blocks_ms)
    # with a fit for this context: total = intercept + slope x sum = sum + overhead
    p.table.fits[settings.context] = {"model": "affine", "intercept_ms": 0.5, "slope": 2.0, "n_networks": 3}
    again = p.predict(tiny_arch)
    assert again.fitted and again.total_ms == pytest.approx(0.5 + 2.0 * pred.blocks_ms)
    assert again.total_ms == pytest.approx(again.blocks_ms + again.overhead_ms)


def test_entries_are_measured_once_and_reused(tiny_arch, other_arch, settings: LatencySettings) -> None:
    p = LatencyPredictor(settings)
    distinct = {str(k) for k in network_keys(tiny_arch, settings)}
    assert len(distinct) == len(network_keys(tiny_arch, settings))  # no repeated block in this arch
    p.predict(tiny_arch)
    assert p.measured == len(distinct)
    p.predict(tiny_arch)
    assert p.measured == len(distinct)  # nothing measured again
    p.predict(other_arch)  # shares stem, first block, head and classifier
    new = {str(k) for k in network_keys(other_arch, settings)} - distinct
    assert p.measured == len(distinct) + len(new) and len(new) == 2
    # another process (a fresh predictor) reads the saved file and measures nothing
    fresh = LatencyPredictor(settings)
    assert fresh.predict(other_arch).blocks_ms == pytest.approx(p.predict(other_arch).blocks_ms)
    assert fresh.measured == 0 and fresh.table.path == p.table.path and fresh.table.path.is_file()


def test_no_fill_refuses_missing_entries(tiny_arch, settings: LatencySettings) -> None:
    with pytest.raises(ConfigError, match=r"lacks 6 entries for this arch .*--build-table"):
        LatencyPredictor(settings).predict(tiny_arch, fill=False)


def test_block_modules_chain_like_the_network(tiny_arch, settings: LatencySettings) -> None:
    keys = network_keys(tiny_arch, settings)
    x = torch.randn(1, 3, 16, 16)
    with torch.inference_mode():
        for key in keys:
            module, shape = block_module(key)
            assert tuple(x.shape) == shape, key
            x = module.eval()(x)
    assert tuple(x.shape) == (1, 10)


def test_space_keys_cover_every_member() -> None:
    from nas_harness.arch import parse_arch

    base = parse_arch("stem_c8_s2,ds_r1_k3_s1_e1_c8_se0.25,ir_r2_k3_s2_e6_c16_se0.25,ir_r1_k3_s1_e6_c24,"
                      "head_c32_do0.2_dp0.2_silu")
    space = SearchSpace.from_dict({"kernels": [3, 5], "expands": [1, 4], "widths": [0.5, 1.0]}, base)
    s = LatencySettings(resolution=32, num_classes=10)
    keys = set(space_keys(space, s))
    rng = random.Random(0)
    for _ in range(200):
        assert set(network_keys(space.sample(rng), s)) <= keys
    assert len(keys) == len(space_keys(space, s))  # each once


def test_fit_overhead_is_the_median_ratio() -> None:
    nets = [{"arch": str(i), "sum_ms": x, "measured_ms": r * x} for i, (x, r) in enumerate(((1.0, 1.2), (2.0, 1.25),
                                                                                           (4.0, 3.0)))]
    fit = fit_overhead(nets)  # the outlier (3x) does not move the median
    assert fit["model"] == "ratio" and fit["intercept_ms"] == 0 and fit["slope"] == pytest.approx(1.25)
    assert fit["n_networks"] == 3 and fit["median_abs_rel_err"] == pytest.approx(0.05 / 1.2)
    even = fit_overhead(nets[:2])
    assert even["slope"] == pytest.approx(1.225)
    with pytest.raises(ConfigError):
        fit_overhead([])


def test_ensure_fit_measures_networks_once_and_stores_the_fit(tiny_arch, settings: LatencySettings) -> None:
    space = SearchSpace.from_dict({"kernels": [3, 5], "expands": [1, 3], "repeats_delta": 0}, tiny_arch)
    p = LatencyPredictor(settings)
    fit = p.ensure_fit(space.sample, networks=3)
    assert fit["n_networks"] == 3 and fit["slope"] > 0 and p.networks_measured == 3
    assert p.ensure_fit(space.sample, networks=3) is not None and p.networks_measured == 3  # reused
    stored = LatencyTable.read(p.table.path).fits[settings.context]
    assert stored["n_networks"] == 3 and len(stored["networks"]) == 3
    assert all(n["measured_ms"] > 0 and n["sum_ms"] > 0 for n in stored["networks"])
    assert p.predict(tiny_arch).fitted


def test_predictor_for_is_one_per_settings(settings: LatencySettings, tmp_path: Path) -> None:
    assert predictor_for(settings) is predictor_for(settings)
    other = LatencySettings(resolution=16, table=str(tmp_path / "other"))
    assert predictor_for(other) is not predictor_for(settings)


def test_memory_format_of_a_table_is_fixed(tiny_arch, settings: LatencySettings) -> None:
    LatencyPredictor(settings).predict(tiny_arch)
    contiguous = LatencySettings(**{**settings.to_dict(), "memory_format": "contiguous"})
    with pytest.raises(ConfigError, match=r"'contiguous' but the table .* was measured in 'channels_last'"):
        LatencyPredictor(contiguous).predict(tiny_arch.replace(head_channels=48))


def test_settings_refuse_bad_values() -> None:
    for bad in ({"batch": 0}, {"resolution": 4}, {"device": "gpu"}, {"threads": 0}, {"repeats": True},
                {"memory_format": "nhwc"}):
        with pytest.raises(ConfigError, match=r"^latency\."):
            LatencySettings(**bad)

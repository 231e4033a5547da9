"""Measurement mechanics (never speed): medians are positive and finite, spreads non-negative, threads restored,
the clock and memory format chosen as documented, bad input refused."""

from __future__ import annotations

import math

import pytest
import torch

from nas_harness.errors import ConfigError
from nas_harness.latency import LatencySettings, choose_memory_format, measure_module, measure_network
from nas_harness.latency.measure import clock_for, quantile, thread_scope, time_calls


def test_measure_module_reports_a_finite_median_and_spread(settings: LatencySettings) -> None:
    m = measure_module(torch.nn.Conv2d(8, 8, 3, padding=1), (1, 8, 8, 8), settings, "channels_last")
    assert math.isfinite(m.median_ms) and m.median_ms > 0
    assert math.isfinite(m.iqr_ms) and m.iqr_ms >= 0
    assert m.wall_median_ms is not None and m.wall_median_ms > 0
    assert (m.repeats, m.warmup, m.device, m.threads, m.batch) == (3, 1, "cpu", 1, 1)
    assert m.clock == "thread_cpu" and m.memory_format == "channels_last"
    assert m.to_dict()["median_ms"] == m.median_ms


def test_network_is_measured_in_eval_mode_and_threads_are_restored(tiny_arch, settings: LatencySettings) -> None:
    before = torch.get_num_threads()
    m = measure_network(tiny_arch, settings, "contiguous")
    assert m.median_ms > 0 and m.memory_format == "contiguous"
    assert torch.get_num_threads() == before


def test_thread_scope_restores_even_on_error() -> None:
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError), thread_scope(1):
        assert torch.get_num_threads() == 1
        raise RuntimeError("boom")
    assert torch.get_num_threads() == before


def test_clock_choice() -> None:
    assert clock_for("cpu", 1) == "thread_cpu"
    assert clock_for("cpu", 2) == "wall"
    assert clock_for("cuda:0", None) == "cuda_events"


def test_time_calls_counts_calls_and_refuses_bad_input() -> None:
    calls = []
    samples, wall = time_calls(lambda: calls.append(1), "cpu", repeats=5, warmup=2, clock="wall")
    assert len(calls) == 7 and len(samples) == 5 and samples == wall and all(s >= 0 for s in samples)
    with pytest.raises(ConfigError):
        time_calls(lambda: None, "cpu", repeats=0, warmup=0)
    with pytest.raises(ConfigError, match="clock 'cuda_events' does not apply"):
        time_calls(lambda: None, "cpu", repeats=1, warmup=0, clock="cuda_events")


def test_quantile_matches_numpy_linear() -> None:
    xs = [5.0, 1.0, 3.0, 2.0]
    assert quantile(xs, 0.5) == 2.5 and quantile(xs, 0.25) == 1.75 and quantile(xs, 0.75) == 3.5


def test_memory_format_choice(tiny_arch, settings: LatencySettings) -> None:
    assert choose_memory_format(settings) == ("channels_last", {})  # fixed: nothing measured
    auto = LatencySettings(resolution=16, num_classes=10, repeats=3, warmup=1, memory_format="auto")
    fmt, trial = choose_memory_format(auto, reference=tiny_arch)
    assert fmt in ("channels_last", "contiguous") and set(trial) == {"channels_last", "contiguous"}
    assert trial[fmt] == min(trial.values()) and all(v > 0 for v in trial.values())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_events(tiny_arch) -> None:  # pragma: no cover - runs where a GPU is lent
    s = LatencySettings(device="cuda:0", threads=None, resolution=32, repeats=5, warmup=2,
                        memory_format="channels_last")
    m = measure_network(tiny_arch, s, "channels_last")
    assert m.clock == "cuda_events" and m.median_ms > 0 and m.threads is None


def test_measuring_leaves_the_global_rng_alone(tiny_arch, settings: LatencySettings) -> None:
    from nas_harness.latency import LatencyPredictor

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    LatencyPredictor(settings).predict(tiny_arch)
    measure_network(tiny_arch, settings, "channels_last")
    assert torch.equal(torch.rand(3), expected)  # a trial's seeded training is not shifted by a lazy fill

"""The latency bench suite's mechanics on a tiny space (never its figures: those need a quiet machine)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from nas_harness.arch import parse_arch
from nas_harness.bench import suites
from nas_harness.bench.latency import evaluate_predictor, median_abs_rel_err, ranks, spearman
from nas_harness.errors import ConfigError
from nas_harness.space import SearchSpace


def test_rank_statistics() -> None:
    assert ranks([10.0, 30.0, 20.0, 20.0]) == [1.0, 4.0, 2.5, 2.5]
    assert spearman([1, 2, 3, 4], [10, 20, 30, 100]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert median_abs_rel_err([11.0, 9.0, 10.0], [10.0, 10.0, 10.0]) == pytest.approx(0.1)
    with pytest.raises(ValueError):
        spearman([1], [1])


def test_suite_is_registered_and_runs_on_a_tiny_space(tmp_path: Path) -> None:
    assert "latency" in suites()
    base = parse_arch("stem_c8_s2,ds_r1_k3_s1_e1_c8_se0.25,ir_r2_k3_s2_e3_c16,head_c32_do0.2_dp0.2_silu")
    space = SearchSpace.from_dict({"kernels": [3, 5], "expands": [1, 3]}, base)
    res = evaluate_predictor(space, tmp_path / "table", n_archs=5, n_fit=2, repeats=3, warmup=0, resolution=32,
                             num_classes=10)
    json.dumps(res)
    for key in ("spearman_rho", "median_abs_rel_err", "macs_spearman_rho"):
        assert math.isfinite(res[key]) or math.isnan(res[key])
    assert -1 <= res["spearman_rho"] <= 1 and res["median_abs_rel_err"] >= 0 and res["n_archs"] == 5
    assert len(res["rows"]) == 5 and all(r["measured_ms"] > 0 and r["predicted_ms"] > 0 for r in res["rows"])
    assert res["fit"]["n_networks"] == 2 and res["measurement_s"] > 0 and res["prediction_s"] > 0
    assert res["settings"]["clock"] == "thread_cpu" and res["settings"]["threads"] == 1
    assert "load_average_1min_start" in res and "load_average_1min_end" in res
    fit_archs = {n["arch"] for n in json.loads(next((tmp_path / "table").glob("*.json")).read_text())["fits"]
                 ["r32_b1_c10_i3"]["networks"]}
    assert not fit_archs & {r["arch"] for r in res["rows"]}  # the fit never saw the evaluated archs
    with pytest.raises(ConfigError, match="fewer than"):
        evaluate_predictor(space, tmp_path / "t2", n_archs=500, n_fit=2)

"""The [latency] section and the latency fields of [objective]: one-line errors naming the key, refused where they
have no effect, the device checked against this machine, and what a study's comparability records."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers.studies import tiny_dict

from nas_harness.errors import ConfigError
from nas_harness.latency import LatencyConfig
from nas_harness.objectives import BudgetConstraints, Objective
from nas_harness.study.config import SECTIONS, schema_markdown, validate

LAT = {"resolution": 32, "repeats": 3, "warmup": 1, "memory_format": "channels_last"}
REWARD = {"kind": "reward", "cost": "latency", "target_ms": 2.0, "target_macs": None}


@pytest.mark.parametrize(("objective", "pattern"), [
    ({"kind": "reward", "cost": "latency", "target_ms": -1.0}, r"^objective\.target_ms = -1\.0 is invalid"),
    ({"kind": "reward", "cost": "latency", "target_ms": 0}, r"^objective\.target_ms = 0 is invalid"),
    ({"kind": "reward", "cost": "latency", "target_ms": float("nan")}, r"^objective\.target_ms = nan is invalid"),
    ({"kind": "reward", "cost": "latency", "target_ms": float("inf")}, r"^objective\.target_ms = inf is invalid"),
    ({"kind": "reward", "cost": "latency", "target_ms": "10ms"}, r"^objective\.target_ms = '10ms' is invalid"),
    ({"kind": "reward", "cost": "latency"}, r"^objective\.target_ms: required with kind = 'reward' and cost = "
                                            r"'latency'"),
    ({"kind": "reward", "cost": "latency", "target_ms": 5, "target_macs": 1e6},
     r"^objective\.target_macs: 1000000\.0 has no effect here: it applies to kind = 'reward' with cost = 'macs'"),
    ({"kind": "reward", "target_ms": 5}, r"^objective\.target_ms: 5\.0 has no effect here"),
    ({"kind": "reward", "cost": "params"}, r"^objective\.cost: 'params' is not a reward cost"),
    ({"kind": "reward", "max_latency_ms": 5}, r"^objective\.max_latency_ms: 5\.0 has no effect here"),
    ({"kind": "budget", "max_latency_ms": -2}, r"^objective\.max_latency_ms = -2 is invalid"),
    ({"kind": "budget", "max_latency_ms": float("inf")}, r"^objective\.max_latency_ms = inf is invalid"),
    ({"kind": "multi", "cost": "seconds"}, r"^objective\.cost = 'seconds' is invalid: input should be 'macs', "
                                           r"'params', 'latency', 'table:"),
])
def test_bad_objective_is_one_line(objective: dict, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern) as exc:
        Objective.from_config(objective)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize(("latency", "pattern"), [
    ({"device": "gpu"}, r"^latency\.device: 'gpu' is invalid: allowed: 'cpu', 'cuda' or 'cuda:N'"),
    ({"device": "cuda:0", "threads": 4}, r"^latency\.threads: 4 has no effect here: it applies to device = 'cpu'"),
    ({"threads": 0}, r"^latency\.threads = 0 is invalid"),
    ({"batch": -1}, r"^latency\.batch = -1 is invalid"),
    ({"resolution": 2.5}, r"^latency\.resolution = 2\.5 is invalid"),
    ({"repeats": 1}, r"^latency\.repeats = 1 is invalid"),
    ({"memory_format": "nhwc"}, r"^latency\.memory_format = 'nhwc' is invalid"),
    ({"devices": "cpu"}, r"^latency\.devices: unknown key; allowed keys: device, threads"),
])
def test_bad_latency_table_is_one_line(tmp_path: Path, latency: dict, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        validate(tiny_dict(tmp_path, objective=REWARD, latency=latency))


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_cuda_latency_on_a_cpu_machine_is_refused(tmp_path: Path) -> None:
    for device in ("cuda", "cuda:1"):
        with pytest.raises(ConfigError, match=rf"^latency\.device = '{device}' but this machine has no CUDA device"):
            validate(tiny_dict(tmp_path, objective=REWARD, latency={"device": device}))
    # no [latency] table and cost = macs: nothing to check
    validate(tiny_dict(tmp_path))


def test_more_threads_than_cores_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^latency\.threads = 1024 but this process may use \d+ core"):
        validate(tiny_dict(tmp_path, objective=REWARD, latency={"threads": 1024}))


def test_objective_properties() -> None:
    o = Objective.from_config({k: v for k, v in REWARD.items() if v is not None})
    assert o.uses_latency and o.cost_key == "latency_ms" and o.target == 2.0 and o.metric_names == ["reward"]
    assert o.values({"val_acc": 0.5, "latency_ms": 4.0}) == [pytest.approx(0.5 * 2.0 ** -0.07)]
    assert "latency/2 ms" in o.describe()
    with pytest.raises(ValueError, match="has no latency_ms"):
        o.values({"val_acc": 0.5, "macs": 10})
    m = Objective.from_config({"kind": "multi", "cost": "latency", "max_macs": 1e9})
    assert m.metric_names == ["val_acc", "latency_ms"] and m.directions == ["maximize", "minimize"]
    assert m.values({"val_acc": 0.5, "latency_ms": 3.0}) == [0.5, 3.0]
    assert m.rejected_values({"latency_ms": 3.0}) == [0.0, 3.0]
    b = Objective.from_config({"kind": "budget", "max_latency_ms": 10, "max_macs": 1e8})
    assert b.uses_latency and b.budget == BudgetConstraints(1e8, 0.0, 10.0)
    assert b.budget.values(5e7, 1, 12.0) == [pytest.approx(-0.5), pytest.approx(0.2)]
    assert b.budget.values(5e7, 1, None)[1] > 1  # no latency: infeasible
    assert b.budget.over_budget(5e7, 1, 12.0) and not b.budget.over_budget(5e7, 1, 9.0)
    assert "latency <= 10 ms" in b.describe()
    assert not Objective().uses_latency and Objective().cost_key == "macs"


def test_comparable_records_latency_only_when_it_is_used(tmp_path: Path) -> None:
    plain = validate(tiny_dict(tmp_path)).comparable()
    assert "latency" not in plain  # studies made before latency existed resume unchanged
    assert "target_ms" not in plain["objective"] and "max_latency_ms" not in plain["objective"]
    assert validate(tiny_dict(tmp_path)).latency_settings() is None
    cfg = validate(tiny_dict(tmp_path, objective=REWARD, latency=LAT))
    c = cfg.comparable()
    assert c["latency"] == {"device": "cpu", "threads": 1, "batch": 1, "resolution": 32, "num_classes": 1000,
                            "memory_format": "channels_last"}
    assert c["objective"]["target_ms"] == 2.0 and c["objective"]["cost"] == "latency"
    s = cfg.latency_settings()
    assert s.resolution == 32 and Path(s.table).is_absolute() and s.table.endswith("results/latency")
    # a [latency] table without a latency cost: latency is recorded, but not part of the experiment's identity
    recorded = validate(tiny_dict(tmp_path, latency=LAT))
    assert recorded.latency_settings() is not None and "latency" not in recorded.comparable()
    # the resolution defaults to the study's macs_resolution
    assert validate(tiny_dict(tmp_path, objective=REWARD)).latency_settings().resolution == 224


def test_latency_section_is_documented() -> None:
    assert SECTIONS["latency"] is LatencyConfig
    md = schema_markdown()
    for name in LatencyConfig.model_fields:
        assert f"`latency.{name}`" in md
    for name in ("target_ms", "max_latency_ms"):
        assert f"`objective.{name}`" in md


def test_explicit_table_of_another_device_is_refused_at_validation(tmp_path: Path) -> None:
    from nas_harness.latency import Fingerprint, LatencyTable

    path = tmp_path / "gpu-table.json"
    LatencyTable(Fingerprint("cuda", "Some GPU", "sm_90", None, "2.13.0", "12.8"), path).save()
    with pytest.raises(ConfigError, match=r"latency table '.*gpu-table\.json' was measured on cuda 'Some GPU'"):
        validate(tiny_dict(tmp_path, objective=REWARD, latency={**LAT, "table": str(path)}))
    path.write_text("{not json")
    with pytest.raises(ConfigError, match=r"gpu-table\.json' is damaged"):
        validate(tiny_dict(tmp_path, objective=REWARD, latency={**LAT, "table": str(path)}))

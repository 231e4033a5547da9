"""``nas-harness latency``: predicted and measured latency of an arch, --build-table for a study, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.studies import write_study

from nas_harness.cli import main
from nas_harness.latency import LatencyTable, space_keys
from nas_harness.study.config import load_study

from .conftest import TINY_ARCH


def test_predict_and_measure(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    args = ["latency", TINY_ARCH, "--resolution", "16", "--num-classes", "10", "--table", str(tmp_path / "lat"),
            "--repeats", "3", "--warmup", "0", "--fit-networks", "2"]
    assert main([*args, "--measure", "--parts"]) == 0
    out = capsys.readouterr().out
    assert "predicted:" in out and "measured:" in out and "error:" in out and "fit on 2 networks" in out
    assert "1x3x16x16, 10 classes" in out and "stem_i3_o8_k3_s2_silu_r16_b1" in out
    (table,) = (tmp_path / "lat").glob("*.json")
    n = len(LatencyTable.read(table))
    assert main([*args, "--no-fill"]) == 0  # everything is in the table now
    assert len(LatencyTable.read(table)) == n and "measured:" not in capsys.readouterr().out


def test_build_table_for_a_study(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = write_study(tmp_path, objective={"kind": "multi", "cost": "latency"},
                       latency={"resolution": 32, "repeats": 3, "warmup": 0, "memory_format": "channels_last"})
    assert main(["latency", "--build-table", str(path), "--fit-networks", "2"]) == 0
    out = capsys.readouterr().out
    cfg = load_study(path)
    keys = space_keys(cfg.search_space(), cfg.latency_settings())
    (table_file,) = Path(cfg.latency_settings().table).glob("*.json")
    table = LatencyTable.read(table_file)
    assert {str(k) for k in keys} <= set(table.entries)
    assert table.fits[cfg.latency_settings().context]["n_networks"] >= 2
    assert f"entries:    {len(table)} ({len(keys)} measured now" in out and "overhead:" in out
    assert main(["latency", "--build-table", str(path), "--fit-networks", "2"]) == 0  # again: nothing to measure
    assert "(0 measured now" in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "pattern"), [
    (["latency", "b0", "--device", "gpu"], r"latency\.device: 'gpu' is invalid"),
    (["latency", "b0", "--batch", "0"], r"--batch: expected an integer >= 1, got 0"),
    (["latency", "b0", "--threads", "-2"], r"--threads: expected an integer >= 1"),
    (["latency"], r"ARCH: give an arch"),
    (["latency", "b0", "--build-table", "x.toml"], r"give either ARCH or --build-table"),
    (["latency", "nope_arch"], r"arch 'nope_arch'"),
    (["latency", "--build-table", "missing.toml"], r"study file 'missing\.toml': no such file"),
    (["latency", "--build-table", "x.toml", "--device", "cpu"], r"--device: does not apply with --build-table"),
])
def test_bad_input_is_one_line_exit_2(argv: list[str], pattern: str, capsys: pytest.CaptureFixture) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    import re

    assert re.search(pattern, err), err


def test_cuda_on_a_cpu_machine_exits_2(capsys: pytest.CaptureFixture) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    assert main(["latency", "b0", "--device", "cuda"]) == 2
    assert "latency.device = 'cuda' but this machine has no CUDA device" in capsys.readouterr().err

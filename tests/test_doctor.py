"""``nas-harness doctor``: machine facts; the GPU check refuses a machine without CUDA in one line, and its
checks run end to end as a toy dry run on the CPU (so the GPU path does not rot between GPU runs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nas_harness.cli import main


def test_environment_and_gpu_refused_without_cuda(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    import torch

    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "torch" in out and "fashion_mnist" in out and "postgres_driver" in out
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(["doctor", "--gpu", "--out", str(tmp_path / "g.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no CUDA device" in err
    assert not (tmp_path / "g.json").exists()


@pytest.mark.slow
@pytest.mark.ray
def test_gpu_check_dry_run_on_cpu(tmp_path: Path, ray_local: None, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    # the trainer bench and compile checks take minutes on a CPU; they are plain calls of code tested elsewhere
    code = main(["doctor", "--gpu", "--device", "cpu", "--quick", "--only", "cuda_training", "quickstart",
                 "ray_fractional_gpu", "--out", "doc.json"])
    report = json.loads(Path("doc.json").read_text())
    checks = report["checks"]
    assert set(checks) == {"cuda_training", "quickstart", "ray_fractional_gpu"}
    assert code == 0, {k: v["summary"] for k, v in checks.items()}
    assert checks["ray_fractional_gpu"]["max_concurrent"] == 4  # 4 trials at 0.25 of one (logical) GPU
    assert checks["quickstart"]["trials"] == 4
    assert "cuda_training" in capsys.readouterr().out  # the summary table

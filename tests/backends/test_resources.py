"""Resources are checked before anything is written: impossible requests exit 2 naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.cli import cli_env, run_cli
from helpers.studies import write_study

from nas_harness.backends.resources import NodeResources, check_ray_request
from nas_harness.errors import ConfigError


@pytest.mark.parametrize(("cpus", "gpus", "device", "needle"), [
    (1, 0.25, "auto", "ray.gpus_per_trial = 0.25 but the Ray cluster has no GPU"),
    (4, 0, "auto", "ray.cpus_per_trial = 4 but the largest node has 2 CPUs"),
    (1, 0, "cuda", "train.device = 'cuda' but ray.gpus_per_trial = 0"),
])
def test_impossible_ray_requests(cpus: float, gpus: float, device: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.").replace("(", r"\(")):
        check_ray_request(cpus, gpus, device, [NodeResources(2, 0), NodeResources(1, 0)])


def test_fractions_of_existing_gpus_are_fine_but_not_more_than_a_node_has() -> None:
    check_ray_request(1, 0.25, "auto", [NodeResources(2, 1)])
    with pytest.raises(ConfigError, match=r"no node has that many GPUs"):
        check_ray_request(1, 2, "auto", [NodeResources(8, 1), NodeResources(8, 1)])


@pytest.mark.parametrize("flags", [["--backend", "ray", "--gpus-per-trial", "0.25"],
                                   ["--backend", "ray", "--cpus-per-trial", "512"]])
def test_cli_exits_2_before_anything_is_written(tmp_path: Path, flags: list[str]) -> None:
    """A fresh process (no Ray running): the request is compared with this machine, no Ray is started."""
    path = write_study(tmp_path, run={"n_trials": 1, "progress": False, "plots": False})
    proc = run_cli("search", path, *flags, cwd=tmp_path, env=cli_env(CUDA_VISIBLE_DEVICES=""), timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.count("\n") == 1 and "ray." in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "results").exists()

"""Tiny latency settings shared by the latency tests: small maps, few repeats, a fixed memory format (so no
reference network is timed to choose one), tables under the test's tmp folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from nas_harness.arch import parse_arch
from nas_harness.latency import LatencySettings

TINY_ARCH = "stem_c8_s2,ds_r1_k3_s1_e1_c8_se0.25,ir_r2_k3_s2_e3_c16,head_c32_do0.2_dp0.2_silu"
OTHER_ARCH = "stem_c8_s2,ds_r1_k3_s1_e1_c8_se0.25,ir_r2_k5_s2_e3_c16,head_c32_do0.2_dp0.2_silu"


@pytest.fixture
def settings(tmp_path: Path) -> LatencySettings:
    return LatencySettings(resolution=16, num_classes=10, repeats=3, warmup=1, memory_format="channels_last",
                           table=str(tmp_path / "latency"))


@pytest.fixture
def tiny_arch():
    return parse_arch(TINY_ARCH)


@pytest.fixture
def other_arch():
    return parse_arch(OTHER_ARCH)

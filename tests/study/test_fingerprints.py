"""The comparability record of every shipped study file is what it was before evaluators, parallel workers and
one-thread defaults existed (measured on the commit before them): a study made then resumes unchanged."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from nas_harness.study.config import load_study

STUDIES = Path(__file__).resolve().parents[2] / "studies"
# sha256 of json.dumps(comparable(), sort_keys=True), first 16 hex digits
BEFORE = {"cifar10.toml": "5ad4689aafa52bc8", "gpu_fashion_mnist.toml": "3f8634dc34a8d077",
          "hard_budget.toml": "785367d3fe2d208f", "mnasnet_reward.toml": "9399f6f3601dd82f",
          "multi_objective_nsga2.toml": "c55f15cd3b8fb8c4", "quickstart.toml": "616b150b0bb97a4f"}


@pytest.mark.parametrize(("name", "digest"), sorted(BEFORE.items()))
def test_shipped_studies_keep_their_fingerprint(name: str, digest: str) -> None:
    comparable = load_study(STUDIES / name).comparable()
    assert hashlib.sha256(json.dumps(comparable, sort_keys=True).encode()).hexdigest()[:16] == digest

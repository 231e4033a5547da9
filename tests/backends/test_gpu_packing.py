"""Trials packed onto GPUs, on the session's Ray with 2 logical GPUs (scheduled exactly like real ones): each
trial is told its GPU, and a GPU never holds more trials than its fractions allow."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import optuna
import pytest
from helpers.studies import tiny_dict

from nas_harness.study.config import validate
from nas_harness.study.search import run_search

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.mark.parametrize(("gpus_per_trial", "n_trials", "at_once", "steps"), [(0.25, 8, 8, 100), (1.0, 4, 2, 40)])
def test_fractional_gpus_pack_trials(tmp_path: Path, ray_local: None, gpus_per_trial: float, n_trials: int,
                                     at_once: int, steps: int) -> None:
    # Trials long enough (~15 CPU-s each) that the last one starts while the first still runs.
    train = {"steps": steps, "epochs": None, "device": "auto"}
    cfg = validate(tiny_dict(tmp_path, name=f"gpu{gpus_per_trial:g}", sampler={"kind": "random"},
                             trial={"cache": False}, train=train, run={"n_trials": n_trials, "backend": "ray"},
                             ray={"cpus_per_trial": 0.25, "gpus_per_trial": gpus_per_trial}))
    summary = run_search(cfg)
    assert summary.n_complete == n_trials and summary.n_fail == 0
    assert summary.max_concurrent == at_once  # 2 GPUs / gpus_per_trial (CPUs allow 8)
    trials = optuna.load_study(study_name=cfg.name, storage=cfg.storage_url).trials
    ids = [t.user_attrs["gpu_ids"] for t in trials]
    assert all(i in ("0", "1") for i in ids), ids  # each trial got exactly one GPU (CUDA_VISIBLE_DEVICES)
    per_gpu = Counter(ids)
    if at_once == n_trials:  # all ran at once: each GPU held exactly its 1 / gpus_per_trial trials
        assert per_gpu == {"0": int(1 / gpus_per_trial), "1": int(1 / gpus_per_trial)}
    assert {t.user_attrs["device"] for t in trials} == {"cpu"}  # no CUDA here: the trainer fell back to CPU

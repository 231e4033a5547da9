"""Trials packed onto GPUs, on the session's Ray with 2 logical GPUs (scheduled exactly like real ones): each
trial is told its GPU, and a GPU never holds more trials than its fractions allow.

Each trial trains for real and then meets the others of its group at a rendezvous (files in a shared folder):
the first ``at_once`` trials can only finish once all of them are running, so how many Ray ran at once does
not depend on how fast this machine is or how busy (a wait of 300 s ends a rendezvous that never completes,
and the count then says so)."""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import optuna
import pytest
from helpers.studies import tiny_dict

from nas_harness._config import ConfigModel
from nas_harness.evaluators import Evaluator, TrainEvaluator, register_evaluator
from nas_harness.study.config import validate
from nas_harness.study.search import run_search

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def rendezvous(folder: Path, size: int, limit_s: float = 300.0) -> None:
    """Take the next ticket; wait until the ticket's whole group of ``size`` has arrived."""
    folder.mkdir(parents=True, exist_ok=True)
    ticket = 0
    while True:
        try:
            os.close(os.open(folder / f"ticket-{ticket}", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            break
        except FileExistsError:
            ticket += 1
    needed = (ticket // size + 1) * size
    end = time.monotonic() + limit_s
    while time.monotonic() < end and not (folder / f"ticket-{needed - 1}").exists():
        time.sleep(0.2)


class Rendezvous(Evaluator):
    kind = "rendezvous"

    def __init__(self, folder: str, size: int) -> None:
        self.folder, self.size = folder, size

    def identity(self) -> dict[str, Any]:
        return {"kind": self.kind, "size": self.size}

    def evaluate(self, spec, report=None, checkpoint=None):  # type: ignore[no-untyped-def]
        record = TrainEvaluator().evaluate(spec, report, checkpoint)
        rendezvous(Path(self.folder), self.size)
        return record


class RendezvousOptions(ConfigModel):
    folder: str
    size: int


register_evaluator("rendezvous", lambda options, ctx: Rendezvous(options.folder, options.size), RendezvousOptions)


@pytest.mark.parametrize(("gpus_per_trial", "n_trials", "at_once"), [(0.25, 8, 8), (1.0, 4, 2)])
def test_fractional_gpus_pack_trials(tmp_path: Path, ray_local: None, gpus_per_trial: float, n_trials: int,
                                     at_once: int) -> None:
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import a test module
    train = {"steps": 20, "epochs": None, "device": "auto"}
    cfg = validate(tiny_dict(tmp_path, name=f"gpu{gpus_per_trial:g}", sampler={"kind": "random"},
                             trial={"cache": False}, train=train, run={"n_trials": n_trials, "backend": "ray"},
                             ray={"cpus_per_trial": 0.25, "gpus_per_trial": gpus_per_trial},
                             evaluator={"kind": "rendezvous"},
                             rendezvous={"folder": str(tmp_path / "rendezvous"), "size": at_once}))
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

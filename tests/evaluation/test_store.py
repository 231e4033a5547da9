"""The durable job store: recipe binding, one record per (group, seed), failures, resume bookkeeping."""

from __future__ import annotations

from pathlib import Path

import pytest

from nas_harness.errors import ConfigError
from nas_harness.evaluation.store import JobStore, run_stored_jobs
from nas_harness.records import TrialRecord

TINY_ARCH = "stem_c8_s1,ds_r1_k3_s1_e1_c8_se0.25,ir_r2_k3_s2_e3_c16_se0.25,head_c32_do0_dp0_silu"


def test_bind_records_and_refuses_another_recipe_or_arch(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    store = JobStore(url, "s")
    store.bind({"train": {"epochs": 1}}, {"a": "arch-a"}, kind="confirm", attrs={"source_study": "s"})
    attrs = store.study.user_attrs
    assert attrs["recipe"] == {"train": {"epochs": 1}} and attrs["source_study"] == "s"
    again = JobStore(url, "s")
    again.bind({"train": {"epochs": 1}}, {"b": "arch-b"}, kind="confirm")  # new groups may join
    assert again.study.user_attrs["archs"] == {"a": "arch-a", "b": "arch-b"}
    with pytest.raises(ConfigError, match=r"different recipe \(train\.epochs changed"):
        again.bind({"train": {"epochs": 2}}, {}, kind="confirm")
    with pytest.raises(ConfigError, match=r"job 'a' is stored in .* as a different arch"):
        again.bind({"train": {"epochs": 1}}, {"a": "other"}, kind="confirm")


def test_records_keep_one_per_key_and_ok_wins(tmp_path: Path) -> None:
    store = JobStore(f"sqlite:///{tmp_path / 'x.db'}", "s")
    store.add("a", 0, None, "RuntimeError: boom", arch="arch-a")
    assert store.records()[("a", 0)].state == "failed" and "boom" in (store.records()[("a", 0)].error or "")
    ok = store.add("a", 0, TrialRecord(arch="arch-a", val_acc=0.5, val_n=10), None, label="#1")
    assert ok.state == "ok" and ok.metrics["job"] == "a" and ok.metrics["label"] == "#1"
    store.add("a", 0, None, "later failure", arch="arch-a")
    assert store.records()[("a", 0)].state == "ok"  # a completed run always wins
    assert store.study.trials[1].value == 0.5


@pytest.mark.slow
def test_run_stored_jobs_skips_stored_and_retries_failed_on_request(tmp_path: Path) -> None:
    from nas_harness.arch import parse_arch
    from nas_harness.backends import Job
    from nas_harness.data import ProxyConfig
    from nas_harness.train import TrainConfig
    from nas_harness.trial import TrialSpec

    data = ProxyConfig(dataset="synthetic", resolution=16, val_size=32, train_subset=64)
    train = TrainConfig(steps=2, batch_size=16, threads=1)

    def make(todo):
        return [Job(f"{g}/seed{s}", TrialSpec(parse_arch(TINY_ARCH), data, train.replace(seed=s), seed=s,
                                              macs_resolution=16, macs_num_classes=10)) for g, s in todo]

    store = JobStore(f"sqlite:///{tmp_path / 'x.db'}", "s")
    store.add("g", 1, None, "failed before", arch=TINY_ARCH)
    out = run_stored_jobs(store, [("g", 0), ("g", 1)], make, progress=False, log=lambda m: None)
    assert out.ran == [("g", 0)] and out.skipped == [("g", 1)] and len(out.failed) == 1
    out = run_stored_jobs(store, [("g", 0), ("g", 1)], make, progress=False, retry_failed=True, log=lambda m: None)
    assert out.ran == [("g", 1)] and not out.failed and [r.seed for r in out.runs] == [0, 1]

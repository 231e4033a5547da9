"""A study on a real two-node Ray cluster (a head and a second node started with ``ray start`` on this
machine): trials land on both nodes, all results go to the one study storage, and when the second node is
killed mid-trial that trial is failed with a reason, its arch retried, and the study still reaches n_trials."""

from __future__ import annotations

import os
import time
from pathlib import Path

import optuna
import pytest
from helpers.cli import cli_env, start_cli
from helpers.raycluster import start_cluster
from helpers.studies import write_study
from optuna.trial import TrialState

pytestmark = [pytest.mark.slow]


@pytest.fixture
def cluster():
    pytest.importorskip("ray")
    c = start_cluster(cpus_per_node=1)
    yield c
    c.stop()


def test_two_nodes_then_one_is_lost(tmp_path: Path, cluster) -> None:
    # 120 steps = several epochs: a trial seen running on the worker (after its first epoch) still has most of
    # its work ahead when the node is killed, however busy this machine is
    path = write_study(tmp_path, sampler={"kind": "random"}, trial={"cache": False},
                       train={"steps": 120, "epochs": None},
                       run={"n_trials": 6, "backend": "ray", "progress": False, "plots": False},
                       ray={"cpus_per_trial": 1.0})
    db = tmp_path / "results" / "tiny" / "study.db"
    driver = start_cli("search", path, "--ray-address", cluster.address, "--no-progress", cwd=tmp_path,
                       env=cli_env(cluster.env))
    worker_node = next(n["id"] for n in cluster.nodes() if not n["head"])
    deadline = time.time() + 600
    killed = False
    while time.time() < deadline and not killed and driver.poll() is None:
        time.sleep(0.5)
        if not db.exists():
            continue
        try:
            study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{db}")
            trials = study.get_trials(deepcopy=False)
        except Exception:  # the study is being created
            continue
        done_on_worker = [t for t in trials if t.state == TrialState.COMPLETE
                          and t.user_attrs.get("ray_node") == worker_node]
        # a running trial says where it runs once it reported its first epoch
        running_on_worker = [t for t in trials if t.state == TrialState.RUNNING
                             and t.user_attrs.get("ray_node") == worker_node]
        if done_on_worker and running_on_worker:
            cluster.kill("worker")
            killed = True
    ended = driver.stderr.read() if driver.poll() is not None else ""
    assert killed, f"never saw a trial running on the worker node; driver: {ended}"
    _out, err = driver.communicate(timeout=600)
    assert driver.returncode == 0, err[-3000:]
    trials = optuna.load_study(study_name="tiny", storage=f"sqlite:///{db}").trials
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 6, [(t.number, t.state.name, t.user_attrs.get("fail_reason")) for t in trials]
    lost = [t for t in trials if t.state == TrialState.FAIL]
    assert lost and all(t.user_attrs["fail_reason"].startswith("interrupted: the Ray worker") for t in lost)
    for t in lost:
        retry = [r for r in trials if r.user_attrs.get("retry_of") == t.number]
        assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE
    nodes = {t.user_attrs["ray_node"] for t in finished}
    assert worker_node in nodes and len(nodes) == 2  # trials ran on both nodes
    assert "trial" in err and "interrupted: the Ray worker" in err
    assert os.path.isdir(tmp_path / "results" / "tiny" / "ray")

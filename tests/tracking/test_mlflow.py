"""Searches logged to a REAL MLflow tracking server (session fixture): one parent run per study, one child run per
stored trial with the trial's record, read back through MLflow's own client.  Two local worker processes with
one SIGKILLed mid-trial, and a Ray study: every finished trial is logged exactly once (the interrupted trial has
no child, its retry has one); a server that is down is one warning line and the study completes; no password
reaches a param or tag."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from helpers.studies import tiny_dict, write_study
from optuna.trial import TrialState

from nas_harness.records import open_storage
from nas_harness.study.config import validate
from nas_harness.study.search import run_search

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _runs(server: Any, experiment: str, study: str = "tiny") -> tuple[list[Any], list[Any]]:
    """(parent runs, child runs) of ``study`` in ``experiment``, through MLflow's client."""
    client = server.client()
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no experiment {experiment!r}"
    runs = client.search_runs([exp.experiment_id], f"tags.`nas.study` = '{study}'", max_results=1000)
    parents = [r for r in runs if r.data.tags.get("nas.role") == "study"]
    children = [r for r in runs if r.data.tags.get("nas.role") == "trial"]
    return parents, children


def _check_child(server: Any, child: Any, trial: optuna.trial.FrozenTrial, parent_id: str) -> None:
    """A child run holds the trial's record: params, metrics with Wilson intervals, the per-epoch curve."""
    ua = trial.user_attrs
    p, m = child.data.params, child.data.metrics
    assert child.data.tags["mlflow.parentRunId"] == parent_id
    assert child.info.status == "FINISHED" and child.data.tags["nas.state"] == "complete"
    assert p["arch"] == ua["arch"] and p["seed"] == "0" and p["threads"] == "1" and p["device"] == "cpu"
    assert p["version.torch"] == ua["versions"]["torch"]
    assert m["val_acc"] == pytest.approx(ua["val_acc"]) and m["macs"] == ua["macs"] and m["params"] == ua["params"]
    assert m["epochs"] == ua["epochs"] and m["objective.reward"] == pytest.approx(trial.values[0])
    assert m["val_acc_ci_low"] < m["val_acc"] < m["val_acc_ci_high"]
    from nas_harness.results.stats import accuracy_interval

    assert (m["val_acc_ci_low"], m["val_acc_ci_high"]) == pytest.approx(accuracy_interval(ua["val_acc"], ua["val_n"]))
    history = server.client().get_metric_history(child.info.run_id, "per_epoch.reward")
    assert {h.step: h.value for h in history} == pytest.approx(dict(trial.intermediate_values))
    assert len(history) == int(ua["epochs"])


def _worker(path: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    return subprocess.Popen([sys.executable, "-m", "nas_harness.cli", "search", str(path), "--no-progress"],
                            cwd=path.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _kill_mid_trial(proc: subprocess.Popen, url: str, timeout_s: float = 300) -> int:
    """SIGKILL ``proc`` once the study holds a COMPLETE trial and ``proc`` is training another; its number."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        assert proc.poll() is None, f"the worker ended before it could be killed: {proc.stderr.read()[-2000:]}"
        try:
            trials = optuna.load_study(study_name="tiny", storage=open_storage(url)).get_trials(deepcopy=False)
        except Exception:  # not created yet
            trials = []
        mine = [t for t in trials if t.state == TrialState.RUNNING and "arch" in t.user_attrs
                and (t.system_attrs.get("nas:owner") or {}).get("pid") == proc.pid]
        if mine and any(t.state == TrialState.COMPLETE for t in trials):
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
            return mine[0].number
        time.sleep(0.1)
    raise AssertionError("never saw the worker training a trial after the first was complete")


def test_two_local_workers_one_killed_mid_trial_log_every_trial_once(tmp_path: Path, mlflow_server: Any) -> None:
    """A worker is SIGKILLed while training its second trial; two workers started together then finish the study
    (one of them fails the dead worker's trial and its arch is retried)."""
    path = write_study(tmp_path, sampler={"kind": "random"}, trial={"cache": False}, train={"epochs": 2},
                       run={"n_trials": 4, "progress": False, "plots": False, "heartbeat_s": 2},
                       tracking={"mlflow": True, "mlflow_uri": mlflow_server.url, "experiment": "two-workers"})
    url = f"sqlite:///{tmp_path / 'results' / 'tiny' / 'study.db'}"
    killed = _kill_mid_trial(_worker(path), url)
    workers = [_worker(path), _worker(path)]
    for w in workers:
        _, err = w.communicate(timeout=600)
        assert w.returncode == 0, err[-3000:]
        assert "warning" not in err, err[-3000:]

    trials = optuna.load_study(study_name="tiny", storage=open_storage(url)).trials
    finished = {t.number: t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)}
    assert len(finished) == 4
    assert trials[killed].state == TrialState.FAIL and trials[killed].user_attrs["fail_reason"].startswith(
        "interrupted")
    retry = [t for t in trials if t.user_attrs.get("retry_of") == killed]
    assert len(retry) == 1 and retry[0].number in finished

    parents, children = _runs(mlflow_server, "two-workers")
    assert len(parents) == 1, [p.info.run_name for p in parents]
    parent = parents[0]
    keys = [c.data.tags["nas.trial"] for c in children]
    assert len(keys) == len(set(keys)), f"a trial was logged twice: {sorted(keys)}"
    assert set(keys) == {str(n) for n in finished}  # the interrupted trial is no result: its retry is
    by_key = {c.data.tags["nas.trial"]: c for c in children}
    for number, trial in finished.items():
        _check_child(mlflow_server, by_key[str(number)], trial, parent.info.run_id)
    assert by_key[str(retry[0].number)].data.params["retry_of"] == str(killed)
    # the parent: the study's settings (credentials redacted) and its table as an artifact
    assert parent.info.run_name == "tiny" and parent.data.params["run.n_trials"] == "4"
    assert parent.data.params["sampler.kind"] == "random"
    assert "trials.csv" in [a.path for a in mlflow_server.client().list_artifacts(parent.info.run_id)]


@pytest.mark.ray
def test_a_ray_study_logs_each_trial_once_and_attaches_its_figures(tmp_path: Path, mlflow_server: Any,
                                                                   ray_local: None) -> None:
    d = tiny_dict(tmp_path, sampler={"kind": "random"}, train={"epochs": 2},
                  run={"n_trials": 2, "backend": "ray", "plots": True},
                  ray={"cpus_per_trial": 1.0, "max_concurrent": 2},
                  tracking={"mlflow": True, "mlflow_uri": mlflow_server.url, "experiment": "ray"})
    cfg = validate(d)
    lines: list[str] = []
    summary = run_search(cfg, log=lines.append)
    assert summary.n_complete == 2 and not [x for x in lines if "warning" in x], lines
    trials = optuna.load_study(study_name="tiny", storage=cfg.storage_url).trials
    finished = [t for t in trials if t.state == TrialState.COMPLETE]
    # a Ray worker lost meanwhile (e.g. to Ray's memory monitor) leaves an interrupted trial: retried, not logged
    assert len(finished) == 2 and all(t.user_attrs["fail_reason"].startswith("interrupted") for t in trials
                                      if t.state == TrialState.FAIL)
    parents, children = _runs(mlflow_server, "ray")
    assert len(parents) == 1 and len(children) == 2
    by_key = {c.data.tags["nas.trial"]: c for c in children}
    assert set(by_key) == {str(t.number) for t in finished}
    for t in finished:
        assert by_key[str(t.number)].data.params["backend"] == "ray"
        _check_child(mlflow_server, by_key[str(t.number)], t, parents[0].info.run_id)
    client = mlflow_server.client()
    figures = [a.path for a in client.list_artifacts(parents[0].info.run_id, "figures")]
    assert "figures/accuracy_vs_macs.png" in figures and "figures/accuracy_vs_macs.svg" in figures
    # a second run of the full study (and its catch-up pass) logs nothing twice
    run_search(cfg, log=lines.append)
    parents2, children2 = _runs(mlflow_server, "ray")
    assert [p.info.run_id for p in parents2] == [parents[0].info.run_id]
    assert sorted(c.info.run_id for c in children2) == sorted(c.info.run_id for c in children)


def test_trials_stored_without_tracking_are_caught_up_once(tmp_path: Path, mlflow_server: Any) -> None:
    """A study run with tracking off (or by a worker that died between storing and logging) is logged by the
    next run that has it on; a third run adds nothing."""
    d = tiny_dict(tmp_path, sampler={"kind": "random"}, run={"n_trials": 2})
    run_search(validate(d), log=lambda m: None)
    d["tracking"] = {"mlflow": True, "mlflow_uri": mlflow_server.url, "experiment": "catch-up"}
    for _ in range(2):
        run_search(validate(d), log=lambda m: None)
        parents, children = _runs(mlflow_server, "catch-up")
        assert len(parents) == 1 and sorted(c.data.tags["nas.trial"] for c in children) == ["0", "1"]


def test_a_tracker_that_is_down_is_one_warning_and_the_study_completes(tmp_path: Path) -> None:
    from helpers.mlflow_server import free_port

    d = tiny_dict(tmp_path, sampler={"kind": "random"}, run={"n_trials": 2},
                  tracking={"mlflow": True, "mlflow_uri": f"http://127.0.0.1:{free_port()}", "timeout_s": 2})
    lines: list[str] = []
    summary = run_search(validate(d), log=lines.append)
    assert summary.n_complete == 2
    warnings = [x for x in lines if "warning" in x]
    assert len(warnings) == 1 and "mlflow http://127.0.0.1" in warnings[0] and "goes on" in warnings[0], lines


def test_no_password_reaches_a_param_or_tag(tmp_path: Path, mlflow_server: Any) -> None:
    """The tracking URI's own password, and any URL password in a logged text, are never logged."""
    secret = "s3cret-Pw"
    uri = mlflow_server.url.replace("http://", f"http://alice:{secret}@")
    d = tiny_dict(tmp_path, sampler={"kind": "random"}, run={"n_trials": 1},
                  tracking={"mlflow": True, "mlflow_uri": uri, "experiment": "secrets"})
    lines: list[str] = []
    run_search(validate(d), log=lines.append)
    assert not [x for x in lines if "warning" in x], lines
    parents, children = _runs(mlflow_server, "secrets")
    assert len(parents) == 1 and len(children) == 1
    for run in parents + children:
        text = repr(run.data.params) + repr(run.data.tags) + (run.info.run_name or "")
        assert secret not in text
    assert parents[0].data.params["tracking.mlflow_uri"] == uri.replace(secret, "***")
    assert secret not in "\n".join(lines)


_DOWN = """
import http.server, sys, tempfile, threading

class Unavailable(http.server.BaseHTTPRequestHandler):
    def answer(self):
        self.send_response(503); self.send_header("Content-Length", "0"); self.end_headers()
    do_GET = do_POST = answer
    def log_message(self, *args): pass

server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Unavailable)
threading.Thread(target=server.serve_forever, daemon=True).start()
print(server.server_address[1])
from nas_harness.tracking import open_tracking
from nas_harness.tracking.config import TrackingSettings
for uri in (sys.argv[1], f"http://127.0.0.1:{server.server_address[1]}", tempfile.mkdtemp()):
    tracking = open_tracking(TrackingSettings(mlflow_uri=uri, experiment="e", timeout_s=2), "study")
    tracking.start({"p": 1})
    print(len(tracking.trackers))
"""


def test_a_server_that_is_down_is_one_clean_line_and_mlflow_says_nothing(tmp_path: Path) -> None:
    """Connection refused (with a password in the URI), a server answering 503, and a working local store: a
    short reason each, never cut mid-word, no password, and none of MLflow's own log lines on stderr."""
    from helpers.mlflow_server import free_port

    pytest.importorskip("mlflow")
    dead = free_port()
    res = subprocess.run([sys.executable, "-c", _DOWN, f"http://alice:pw-123@127.0.0.1:{dead}"],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path,
                         env=os.environ | {"PYTHONPATH": os.pathsep.join(sys.path)})
    assert res.returncode == 0, res.stderr[-3000:]
    unavailable, *trackers = res.stdout.split()
    assert trackers == ["0", "0", "1"]  # the local store works
    tail = "this run goes on without it (the study storage keeps every result; a later run logs what was missed)"
    lines = res.stderr.splitlines()
    assert len(lines) == 2, res.stderr
    assert lines[0] == (f"warning: mlflow http://alice:***@127.0.0.1:{dead}: cannot start (MlflowException: "
                        f"Connection refused); {tail}")
    # MLflow words a 503 after its retries one way or the other (urllib3's retry count, or its own check)
    assert re.fullmatch(rf"warning: mlflow http://127\.0\.0\.1:{unavailable}: cannot start \(MlflowException: "
                        r"(too many 503 error responses|API request to endpoint \S+ failed with error code 503 != "
                        rf"200\. Response body: '')\); {re.escape(tail)}", lines[1]), lines[1]


def test_a_long_failure_is_shortened_between_words() -> None:
    from nas_harness.tracking._base import failure_text

    text = failure_text(RuntimeError("HTTPConnectionPool(host='x', port=9): " + "retry after failure " * 40))
    assert len(text) <= 240 and text.endswith(" ...")
    assert all(w in ("RuntimeError:", "HTTPConnectionPool(host='x',", "port=9):", "retry", "after", "failure", "...")
               for w in text.split()), text

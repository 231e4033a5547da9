"""Why a search run stopped: one line at the end of ``search``, stored with the study, and said by ``report``."""

from __future__ import annotations

import re
from pathlib import Path

import optuna
import pytest
from helpers.studies import write_study

from nas_harness.cli import main
from nas_harness.report import write_report
from nas_harness.study.progress import STOP_ATTR, stop_reason


def test_each_cause_in_words() -> None:
    assert stop_reason(finished=10, target=14, timed_out=True, timeout_s=480) == (
        "stopped: run.timeout_s = 480 s reached with 10 of 14 trials finished; run the same command to continue")
    assert stop_reason(finished=14, target=14, timed_out=True, timeout_s=480) == (
        "stopped: run.n_trials = 14 reached (14 trials finished)")  # done is done, whatever the clock says
    assert stop_reason(finished=3, target=14, interrupted=True, timed_out=True).startswith(
        "stopped: interrupted (Ctrl-C) with 3 of 14 trials finished; run the same command")
    assert stop_reason(finished=2, target=14, stopped_by_failures=True, max_failures=3).startswith(
        "stopped: run.max_failures = 3 failed trials in this run, with 2 of 14 trials finished; see their fail_reason")
    assert stop_reason(finished=8, target=8, grid_exhausted=True, grid_size=8) == (
        "stopped: grid exhausted: all 8 archs of the space evaluated (8 trials finished)")
    assert "running in other workers" in stop_reason(finished=5, target=6, running_elsewhere=1)


@pytest.mark.slow
def test_search_prints_and_stores_why_it_stopped(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = write_study(tmp_path, run={"n_trials": 3, "progress": False, "plots": False, "timeout_s": 0.001})
    assert main(["search", str(path)]) == 0  # the deadline passes before (or right after) the first trial
    out = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"stopped: run\.timeout_s = 0\.001 s reached with [01] of 3 trials finished; run the same "
                        r"command to continue", out[-1]), out[-1]
    folder = tmp_path / "results" / "tiny"
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{folder / 'study.db'}")
    assert study.user_attrs[STOP_ATTR]["reason"] == out[-1]
    assert main(["search", str(path), "--timeout", "0", "--n-trials", "1"]) == 0  # continue, no time limit
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "stopped: run.n_trials = 1 reached (1 trial finished)"
    md = write_report(folder, figures=False).markdown.read_text()
    assert "| last run | stopped: run.n_trials = 1 reached (1 trial finished) (" in md
    # the run's limits are the last run's (file + flags), not the first run's stored with the study
    assert "| run.n_trials | 1 (asked for by the last run; 3 when the study was created) |" in md
    assert "| run.timeout_s | 0 (no limit) (asked for by the last run; 0.001 s when the study was created) |" in md
    assert study.user_attrs["config"]["run"]["n_trials"] == 3  # the stored settings stay as created
    assert optuna.load_study(study_name="tiny", storage=f"sqlite:///{folder / 'study.db'}").user_attrs[
        STOP_ATTR]["run"] == {"n_trials": 1, "timeout_s": 0.0, "max_failures": 0, "backend": "local"}


def test_report_shows_the_last_runs_limits_beside_the_creation_values() -> None:
    from nas_harness.report.settings import _run_rows

    created = {"n_trials": 2, "timeout_s": 0.0, "max_failures": 0, "backend": "local", "storage": "x"}
    assert _run_rows(created, {}) == [["run.n_trials", "2"], ["run.timeout_s", "0 (no limit)"],
                                      ["run.max_failures", "0 (run.n_trials)"], ["run.backend", "local"]]
    last = {"n_trials": 5, "timeout_s": 60.0, "max_failures": 0, "backend": "local"}
    assert _run_rows(created, last)[:2] == [
        ["run.n_trials", "5 (asked for by the last run; 2 when the study was created)"],
        ["run.timeout_s", "60 s (asked for by the last run; 0 (no limit) when the study was created)"]]
    assert _run_rows({}, last)[0] == ["run.n_trials", "5"]  # nothing stored at creation: nothing to compare

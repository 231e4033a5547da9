"""Issue #21: Ctrl-C at any moment of a command's start-up (imports, argument and study checks, data loading)
is one line and exit 130, never a traceback; the moments are spread over the first seconds, and whatever the
machine's speed each one must give the same kind of ending."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.studies import tiny_dict, to_toml

ROOT = Path(__file__).resolve().parents[2]


def _start_search(tmp_path: Path) -> subprocess.Popen:
    """A 50-trial tiny search started as a fresh interpreter (the signal may land anywhere in its start-up)."""
    (tmp_path / "s.toml").write_text(to_toml(tiny_dict(tmp_path, run={"n_trials": 50})))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "nas_harness.cli", "search", "s.toml", "--no-progress"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("delay_s", [0.15, 0.4, 0.8, 1.5, 3.0])
def test_sigint_during_start_up_is_one_line(tmp_path: Path, delay_s: float) -> None:
    proc = _start_search(tmp_path)
    time.sleep(delay_s)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert "Traceback" not in err, err[-3000:]
    # one line says so: on stderr before the search started, else the search's own stop line (stdout)
    lines = [ln for ln in (err + out).splitlines() if "interrupted" in ln]
    if proc.returncode == -signal.SIGINT:  # ended by the signal itself (before Python's handler was installed)
        assert len(lines) <= 1, err[-2000:]
        return
    assert proc.returncode == 130, (proc.returncode, err[-2000:])
    assert len(lines) == 1, (out[-2000:], err[-2000:])
    stream = err if lines[0] in err.splitlines() else out
    assert stream.splitlines()[-1] == lines[0], (out[-2000:], err[-2000:])


@pytest.mark.parametrize("delay_s", [0.4, 1.5, 3.0])
def test_sigterm_during_start_up_is_one_line_and_exit_143(tmp_path: Path, delay_s: float) -> None:
    """SIGTERM (SLURM, systemd, docker stop, kill) is handled as Ctrl-C is, worded after it, exit 128 + 15."""
    proc = _start_search(tmp_path)
    time.sleep(delay_s)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=300)
    assert "Traceback" not in err, err[-3000:]
    if proc.returncode == -signal.SIGTERM:  # ended by the signal itself (before Python's handler was installed)
        return
    assert proc.returncode == 143, (proc.returncode, err[-2000:])
    lines = [ln for ln in (err + out).splitlines() if "SIGTERM" in ln]
    assert len(lines) == 1 and "interrupted" not in err.replace("interrupted (SIGTERM)", ""), (out[-2000:], err)
    assert lines[0] in ["nas-harness search: stopped by SIGTERM", *out.splitlines()[-1:]], (out[-2000:], err)

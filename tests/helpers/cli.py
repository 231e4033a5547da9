"""The one way tests run ``nas-harness`` in a real subprocess: this checkout's package first on PYTHONPATH."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def cli_env(base: Mapping[str, str] | None = None, **extra: str) -> dict[str, str]:
    """``base`` (default: this process's environment) with this checkout first on PYTHONPATH and ``extra``."""
    env = dict(os.environ if base is None else base)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.update(extra)
    return env


def _argv(argv: tuple[Any, ...]) -> list[str]:
    return [sys.executable, "-m", "nas_harness.cli", *map(str, argv)]


def start_cli(*argv: Any, cwd: Path, env: Mapping[str, str] | None = None, **popen: Any) -> subprocess.Popen:
    """``nas-harness ARGV`` started in ``cwd`` (stdout/stderr piped as text unless given)."""
    popen.setdefault("stdout", subprocess.PIPE)
    popen.setdefault("stderr", subprocess.PIPE)
    popen.setdefault("text", True)
    return subprocess.Popen(_argv(argv), cwd=cwd, env=dict(env) if env is not None else cli_env(), **popen)


def run_cli(*argv: Any, cwd: Path, env: Mapping[str, str] | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """``nas-harness ARGV`` run to its end in ``cwd``; its exit code, stdout and stderr."""
    return subprocess.run(_argv(argv), cwd=cwd, env=dict(env) if env is not None else cli_env(), capture_output=True,
                          text=True, timeout=timeout, check=False)

"""What a hostile user puts where a file goes: a FIFO, a device, a socket, a folder, or a symlink to one of them."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest


def plant(path: Path, kind: str) -> None:
    """Put ``kind`` at ``path``: "fifo", "device" (a symlink to /dev/null), "socket", "folder",
    "symlink-to-folder" or "symlink-to-fifo"."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "device":
        path.symlink_to("/dev/null")
    elif kind == "socket":
        s = socket.socket(socket.AF_UNIX)
        try:
            s.bind(str(path))
        except OSError as exc:  # pragma: no cover - a path too long for AF_UNIX
            pytest.skip(f"cannot bind a socket there: {exc}")
        s.close()
    elif kind == "folder":
        path.mkdir()
    elif kind == "symlink-to-folder":
        (path.parent / "elsewhere").mkdir()
        path.symlink_to(path.parent / "elsewhere")
    elif kind == "symlink-to-fifo":
        os.mkfifo(path.parent / "pipe")
        path.symlink_to(path.parent / "pipe")
    else:  # pragma: no cover
        raise AssertionError(kind)

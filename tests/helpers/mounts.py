"""Read-only and full file systems for tests, from small tmpfs mounts.

Root ignores permission bits, so ``chmod`` cannot make a read-only folder in a container running as root; a
read-only tmpfs (or a 2 MB one, filled up) is the real thing.  Where ``mount`` is not permitted (CI without
privileges, a non-root user) the tests that need it are skipped, all for one reason.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

SKIP_REASON = "needs `mount -t tmpfs` (root with CAP_SYS_ADMIN); not permitted here"


def _mount(options: str, where: Path) -> bool:
    if shutil.which("mount") is None or shutil.which("umount") is None:
        return False
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True,
                         timeout=30, check=False)
    return res.returncode == 0


def _umount(where: Path) -> None:
    res = subprocess.run(["umount", str(where)], capture_output=True, timeout=30, check=False)
    if res.returncode != 0:  # still busy (an open database in this process): detach it lazily
        subprocess.run(["umount", "-l", str(where)], capture_output=True, timeout=30, check=False)


@functools.cache
def can_mount() -> bool:
    """Whether a tmpfs can be mounted (and unmounted) here."""
    if os.name != "posix" or os.geteuid() != 0:
        return False
    where = Path(tempfile.mkdtemp(prefix="nas_mount_probe_"))
    try:
        if not _mount("size=64k", where):
            return False
        _umount(where)
        return True
    finally:
        with contextlib.suppress(OSError):
            where.rmdir()


@contextlib.contextmanager
def tmpfs(where: Path, options: str) -> Iterator[Path]:
    """``where`` as a tmpfs mounted with ``options`` for the body (skips where mounting is not permitted)."""
    if not can_mount():
        pytest.skip(SKIP_REASON)
    where.mkdir(parents=True, exist_ok=True)
    if not _mount(options, where):
        pytest.skip(SKIP_REASON)
    try:
        yield where
    finally:
        _umount(where)


@contextlib.contextmanager
def read_only_dir(where: Path) -> Iterator[Path]:
    """``where`` as an empty read-only file system."""
    with tmpfs(where, "ro,size=1m"):
        yield where


@contextlib.contextmanager
def read_only_copy(src: Path, where: Path, size: str = "16m") -> Iterator[Path]:
    """A copy of the folder ``src`` at ``where`` on a file system then remounted read-only (an archived or
    shared results folder)."""
    with tmpfs(where, f"size={size}"):
        shutil.copytree(src, where, dirs_exist_ok=True)
        res = subprocess.run(["mount", "-o", "remount,ro", str(where)], capture_output=True, timeout=30, check=False)
        assert res.returncode == 0, res.stderr
        yield where


@contextlib.contextmanager
def full_disk(where: Path, size: str = "2m", leave: int = 0) -> Iterator[Path]:
    """``where`` as a small tmpfs filled up to ``leave`` bytes of free space."""
    with tmpfs(where, f"size={size}"):
        fill(where, leave)
        yield where


def fill(where: Path, leave: int = 0) -> None:
    """Write a filler file until at most ``leave`` bytes are free on ``where``'s file system."""
    filler = where / ".filler"
    with filler.open("ab") as f:
        chunk = b"\0" * 4096
        while True:
            st = os.statvfs(where)
            if st.f_bavail * st.f_frsize <= leave:
                break
            try:
                f.write(chunk)
                f.flush()
            except OSError:
                break

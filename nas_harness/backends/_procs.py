"""Worker processes on this machine: how they start (fresh interpreters with passive OpenMP waiting), die with
the process that started them, and take Ctrl-C once."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from typing import Any

from nas_harness.backends.settings import passive_wait_env


def die_with_parent(parent: int) -> None:
    """Linux: this process is killed when ``parent`` dies (even by SIGKILL), so a killed command leaves no worker
    behind; a worker's trial in flight is then failed and retried like any dead worker's."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def interrupt_once() -> None:
    """Ctrl-C may reach a worker twice (from the terminal, and passed on by its parent): the first raises
    KeyboardInterrupt, later ones are ignored so the worker's clean-up finishes."""

    def handler(signum: int, frame: Any) -> None:
        from nas_harness.errors import note_interrupt

        note_interrupt()
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handler)

    def unraisable(info: Any) -> None:  # a Ctrl-C landing in a gc callback is noted, not printed
        if not isinstance(info.exc_value, KeyboardInterrupt):
            sys.__unraisablehook__(info)

    sys.unraisablehook = unraisable


def worker_setup(parent: int) -> None:
    """What every worker process does first."""
    die_with_parent(parent)
    interrupt_once()


@contextlib.contextmanager
def worker_environment() -> Any:
    """Workers started inside this block inherit passive OpenMP waiting (see ``passive_wait_env``)."""
    extra = passive_wait_env()
    saved = {k: os.environ.get(k) for k in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def spawn_context() -> Any:
    """Fresh interpreters: no inherited torch, OpenMP or Ray state."""
    import multiprocessing

    return multiprocessing.get_context("spawn")


def default_workers(threads: int, device: str = "cpu") -> int:
    """Workers that fit this machine: the usable cores divided by the threads per trial (one per process on a
    GPU, where ``--device cuda:N`` starts one per GPU)."""
    from nas_harness.train.trainer import usable_cores

    if device.startswith("cuda"):
        return 1
    if device == "auto":
        import torch

        if torch.cuda.is_available():
            return 1
    return max(1, usable_cores() // max(1, int(threads)))

"""Exception types shared by every layer.

Bad *input* (arch strings, search spaces, study files, CLI arguments, data files) raises a subclass of
``ValueError`` whose message is one line naming the field and what is allowed; the CLI turns those into
``exit 2``.  Failures *while running a trial* raise :class:`TrialError` subclasses, which the search and
ablation runners record as a failed trial (with the message as the reason) before moving on.
"""

from __future__ import annotations


class HarnessError(Exception):
    """Base class of every error raised on purpose by nas-harness."""


class ConfigError(HarnessError, ValueError):
    """Invalid user input: an arch string, search space, study file or CLI argument."""


class DataError(HarnessError, ValueError):
    """A dataset is missing, corrupt or inconsistent; the message names the file."""


class TrialError(HarnessError, RuntimeError):
    """A trial failed in a way that should be recorded as FAIL (the study goes on)."""


class NonFiniteLossError(TrialError):
    """The training loss became NaN or infinite."""

    def __init__(self, step: int, loss: float) -> None:
        super().__init__(f"non-finite loss {loss} at step {step}")
        self.step = step
        self.loss = loss


class TrialOutOfMemoryError(TrialError):
    """The device ran out of memory; device memory has been released before this is raised."""

    def __init__(self, step: int, detail: str = "") -> None:
        msg = f"out of memory at step {step}"
        super().__init__(f"{msg}: {detail}" if detail else msg)
        self.step = step


# --- Ctrl-C that Python could not deliver -----------------------------------------------------------------
# A SIGINT that arrives while Python runs a weakref or garbage-collector callback raises KeyboardInterrupt there,
# and Python only prints "Exception ignored" and goes on.  The command line's handler notes every Ctrl-C here;
# long loops call raise_if_interrupted() at their safe points, so a swallowed Ctrl-C still stops the run.
_interrupted = False


def note_interrupt() -> None:
    """Record that the user pressed Ctrl-C (called from the SIGINT handler)."""
    global _interrupted
    _interrupted = True


def raise_if_interrupted() -> None:
    """Raise KeyboardInterrupt if a Ctrl-C was noted (a safe point of a long loop)."""
    if _interrupted:
        raise KeyboardInterrupt

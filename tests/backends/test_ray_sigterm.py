"""Issue #21: while Ray Tune runs a search, SIGTERM is turned into the KeyboardInterrupt the search already
ends on, noted as SIGTERM (finished trials kept, one line, exit 143); Ray's native handler would print a signal
dump and abort.  (End to end on a live Ray this was checked by hand; the test suite starts Ray only once, inside
the test process, where a real SIGTERM cannot be sent.)"""

from __future__ import annotations

import os
import signal

import pytest

from nas_harness.backends.ray import _sigterm_as_interrupt


def test_sigterm_becomes_a_keyboard_interrupt_and_the_handler_is_given_back(monkeypatch: pytest.MonkeyPatch) -> None:
    from nas_harness import errors

    monkeypatch.setattr(errors, "_interrupted", False)  # given back after the test: later tests are not stopped
    monkeypatch.setattr(errors, "_signal", None)
    sentinel = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        previous = _sigterm_as_interrupt()
        assert previous == signal.SIG_DFL
        with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
            os.kill(os.getpid(), signal.SIGTERM)
        assert errors.interrupted() and errors.interrupt_exit_code() == 143 and errors.interrupt_name() == "SIGTERM"
        signal.signal(signal.SIGTERM, previous)
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    finally:
        signal.signal(signal.SIGTERM, sentinel)

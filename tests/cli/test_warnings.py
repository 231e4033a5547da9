"""The command line's warnings are one line each, and one raised while a progress bar runs is written above the
bar (tqdm clears and redraws it) instead of into it."""

from __future__ import annotations

import sys
import warnings

import pytest
from tqdm.auto import tqdm

from nas_harness.cli._checks import one_line_warnings


def test_a_warning_during_a_progress_bar_is_written_above_it(capsys: pytest.CaptureFixture[str]) -> None:
    with one_line_warnings("ablate"):
        bar = tqdm(total=4, desc="runs", file=sys.stderr)
        bar.update(1)
        warnings.warn("workers = 8: cut\n to 2", stacklevel=1)
        bar.close()
    err = capsys.readouterr().err
    before, line, after = err.partition("nas-harness ablate: warning: workers = 8: cut to 2\n")
    assert line, err
    assert before.endswith("\r") and after.startswith("\rruns:"), err  # the bar cleared first, then redrawn


def test_a_warning_without_a_bar_is_one_plain_line(capsys: pytest.CaptureFixture[str]) -> None:
    with one_line_warnings("confirm"):
        warnings.warn("two\nlines", stacklevel=1)
    assert capsys.readouterr().err == "nas-harness confirm: warning: two lines\n"

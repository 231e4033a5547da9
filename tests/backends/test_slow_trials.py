"""The one-time warning when trials run far slower than the study's own earlier ones."""

from __future__ import annotations

from types import SimpleNamespace

from nas_harness.backends.loop import SLOW_WARNING, SlowTrials
from nas_harness.records import TrialRecord


def _study(times: list[float]) -> SimpleNamespace:
    trials = [SimpleNamespace(user_attrs={"wall_time_s": t}) for t in times]
    return SimpleNamespace(get_trials=lambda deepcopy=False, states=None: trials)


def test_slow_trials_are_said_once_with_the_load_average() -> None:
    lines: list[str] = []
    slow = SlowTrials(_study([2.0, 2.5, 3.0]))
    slow.check(TrialRecord(wall_time_s=6.0), lines.append)  # 2.4x the median: not yet
    assert lines == []
    slow.check(TrialRecord(wall_time_s=9.0), lines.append)
    slow.check(TrialRecord(wall_time_s=20.0), lines.append)
    assert len(lines) == 1 and lines[0].startswith(SLOW_WARNING)
    assert "3.6x the study's typical 2.5 s" in lines[0] and "load average is" in lines[0]


def test_without_earlier_trials_the_first_three_are_the_reference() -> None:
    lines: list[str] = []
    slow = SlowTrials(_study([]))
    for t in (1.0, 1.2, 1.1, 1.3):
        slow.check(TrialRecord(wall_time_s=t), lines.append)
    slow.check(TrialRecord(wall_time_s=1.0, cached=True), lines.append)
    assert lines == []
    slow.check(TrialRecord(wall_time_s=5.0), lines.append)
    assert len(lines) == 1

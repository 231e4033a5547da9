"""Scaling-search triples that give the same network are grouped; intervals and ties with the best."""

from __future__ import annotations

import pytest

from nas_harness.results import accuracy_interval
from nas_harness.results.scaling import scaling_groups


def _row(a: float, b: float, g: float, arch: str, res: int, acc: float, n: int = 200, macs: float = 1e6) -> dict:
    return {"alpha": a, "beta": b, "gamma": g, "arch": arch, "resolution": res, "val_acc": acc, "val_n": n,
            "macs": macs, "macs_resolution": 224, "number": 0}


def test_same_network_is_one_group_and_ties_are_marked() -> None:
    rows = [_row(1.2, 1.1, 1.15, "A", 37, 0.555), _row(1.3, 1.05, 1.15, "A", 37, 0.555),
            _row(1.2, 1.15, 1.1, "A", 37, 0.555),  # the three triples tied at 0.5550: one network
            _row(1.0, 1.2, 1.15, "B", 37, 0.550), _row(1.4, 1.0, 1.2, "C", 38, 0.40),
            _row(1.1, 1.1, 1.2, "A", 38, 0.53)]  # same arch at another resolution: another network
    groups = scaling_groups(rows)
    assert [g.arch for g in groups] == ["A", "B", "A", "C"]
    best = groups[0]
    assert best.members == [(1.2, 1.1, 1.15), (1.2, 1.15, 1.1), (1.3, 1.05, 1.15)]
    assert (best.ci_low, best.ci_high) == pytest.approx(accuracy_interval(0.555, 200))
    assert [g.tied_with_best for g in groups] == [True, True, True, False]  # 200 images cannot split 55.5/55/53
    assert groups[1].diff_vs_best[0] == pytest.approx(-0.005)
    assert groups[3].diff_vs_best[2] < 0
    assert best.label == "a1.2/b1.1/g1.15" and best.job == "37px:A"
    assert [g.rank for g in groups] == [1, 2, 3, 4]


def test_no_rows_no_groups() -> None:
    assert scaling_groups([]) == []

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest
from helpers.fakes import known_points_study
from hypothesis import given, settings
from hypothesis import strategies as st
from optuna._hypervolume import compute_hypervolume
from optuna.trial import TrialState

from nas_harness.errors import ConfigError
from nas_harness.presets import efficientnet_b0
from nas_harness.results import (
    ReferencePoint,
    best_so_far,
    dominated_by,
    hypervolume,
    hypervolume_2d,
    hypervolume_history,
    pareto_front,
    pareto_mask,
    study_frame,
)

ARCH = str(efficientnet_b0())  # a real arch string: readers parse the stored ones

# (macs, val_acc); (30, 0.6) is dominated by (20, 0.7).  Hand-computed with reference (50, 0):
# (20-10)*0.5 + (40-20)*0.7 + (50-40)*0.8 = 27 -> 27 / (50 * 1) = 0.54.
POINTS = [(10.0, 0.5), (20.0, 0.7), (40.0, 0.8), (30.0, 0.6)]


@pytest.fixture
def known(tmp_path: Path):
    storage = f"sqlite:///{tmp_path / 'k.db'}"
    extra = [
        # better than everything but not comparable: pruned, stopped early, and a reference arch
        dict(state=TrialState.PRUNED, user_attrs={"arch": ARCH, "macs": 1.0, "val_acc": 0.99}),
        dict(values=[0.99, 2.0], user_attrs={"arch": ARCH, "macs": 2.0, "val_acc": 0.99, "full_budget": False}),
        dict(values=[0.75, 25.0], user_attrs={"arch": ARCH, "macs": 25.0, "val_acc": 0.75, "reference": "b0"}),
        dict(state=TrialState.FAIL, user_attrs={"arch": ARCH, "macs": 5.0, "fail_reason": "oom"}),
    ]
    known_points_study(storage, "known", POINTS, extra)
    return study_frame(storage, "known")


def test_front_on_known_points(known) -> None:
    front = pareto_front(known)
    assert list(zip(front["macs"], front["val_acc"])) == [(10.0, 0.5), (20.0, 0.7), (40.0, 0.8)]
    assert front["front_rank"].tolist() == [3, 2, 1]  # 1 = most accurate
    with_refs = pareto_front(known, include_reference=True)
    assert list(with_refs["macs"]) == [10.0, 20.0, 25.0, 40.0]
    # the reference b0 at (25, 0.75) is not dominated by the search front; a point at (25, 0.65) is
    assert dominated_by(front, 25.0, 0.75).empty
    assert dominated_by(front, 25.0, 0.65)["macs"].tolist() == [20.0]
    by_params = pareto_front(known, cost="params")  # params 1000..1003, acc increasing except the last
    assert by_params["params"].tolist() == [1000, 1001, 1002]


def test_hypervolume_on_known_points(known) -> None:
    assert hypervolume(known, ReferencePoint(50.0, 0.0)) == pytest.approx(0.54)
    # (10)*(0.1) + (20)*(0.3) + (10)*(0.4) = 11 over a box of 50 * 0.6
    assert hypervolume(known, ReferencePoint(50.0, 0.4)) == pytest.approx(11 / 30)
    # a reference point cheaper than a point excludes it: only (10, .5) and (20, .7) count below 30
    assert hypervolume(known, ReferencePoint(30.0, 0.0)) == pytest.approx((10 * 0.5 + 10 * 0.7) / 30)
    hist = hypervolume_history(known, ReferencePoint(50.0, 0.0))
    # trials 0..3 are the known points; then pruned / stopped / reference (skipped) / failed change nothing
    assert hist["hypervolume"].tolist() == pytest.approx([0.4, 0.52, 0.54, 0.54, 0.54, 0.54, 0.54])
    assert hist["number"].tolist() == [0, 1, 2, 3, 4, 5, 7]
    assert hypervolume(known, ReferencePoint(50.0, 0.0), include_reference=True) == pytest.approx(
        (10 * 0.5 + 5 * 0.7 + 15 * 0.75 + 10 * 0.8) / 50)
    with pytest.raises(ConfigError, match="reference point: acc"):
        ReferencePoint(50.0, 1.0)


def test_best_so_far_ignores_incomparable_trials(known) -> None:
    best = best_so_far(known, "val_acc")
    assert best["val_acc"].tolist() == pytest.approx([0.5, 0.7, 0.8, 0.8, 0.8, 0.8, 0.8])


def test_default_reference_is_shared_and_stated(known) -> None:
    from nas_harness.results import default_reference_point

    ref = default_reference_point(known)
    assert ref.cost == pytest.approx(44.0) and ref.acc == 0.0  # 1.1 x max eligible MACs incl. references


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 50), st.integers(0, 50)), min_size=1, max_size=25))
def test_hypervolume_matches_optuna(pts) -> None:
    arr = np.asarray(pts, dtype=float)
    ref = np.array([51.0, 51.0])
    assert hypervolume_2d(arr, ref) == pytest.approx(compute_hypervolume(arr, ref))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 20), st.integers(0, 20)), min_size=1, max_size=25))
def test_pareto_mask_matches_optuna_best_trials(pts) -> None:
    study = optuna.create_study(directions=["minimize", "maximize"])
    for c, a in pts:
        study.add_trial(optuna.trial.create_trial(values=[c, a]))
    expected = sorted({t.number for t in study.best_trials})
    mask = pareto_mask(np.array([p[0] for p in pts]), np.array([p[1] for p in pts]))
    assert sorted(np.flatnonzero(mask).tolist()) == expected

"""The verdict logic of the scaling-curves report follows the paired intervals (constructed results)."""

from __future__ import annotations

import math

import pytest

from nas_harness.results.stats import BEATS, TIED, WORSE, paired_delta
from nas_harness.scaling_curves.stats import (
    GAINS,
    LOSES,
    UNRESOLVED,
    CurveData,
    marginal_gains,
    match_at_macs,
    stops_gaining,
)

SEEDS = (0, 1, 2, 3)
NOISE = (0.002, -0.001, 0.0, -0.001)  # per-seed offsets, so the paired differences have a spread
JITTER = (0.0, 0.003, 0.001, 0.0)  # a compound point's own per-seed offsets (NOISE alone is shared with the curve)


def curve(name: str, macs: list[float], means: list[float], noise: tuple[float, ...] = NOISE) -> CurveData:
    """Points with accuracy ``means[i] + noise[s] + tiny point-specific jitter`` per seed."""
    acc = [{s: m + noise[s] + 0.004 * ((i + s) % 2) for s in SEEDS} for i, m in enumerate(means)]
    return CurveData(name, [f"p{i}" for i in range(len(means))], macs, acc)


def test_gain_per_doubling_is_the_paired_difference_over_log2_of_the_macs_ratio() -> None:
    c = curve("width", [1e6, 4e6], [0.70, 0.76])  # two doublings
    (seg,) = marginal_gains(c)
    assert seg.doublings == pytest.approx(2.0)
    diffs = [(c.acc[1][s] - c.acc[0][s]) / 2 for s in SEEDS]
    assert seg.gain.mean == pytest.approx(sum(diffs) / len(diffs))
    ref = paired_delta({s: c.acc[1][s] / 2 for s in SEEDS}, {s: c.acc[0][s] / 2 for s in SEEDS})
    assert (seg.gain.ci_low, seg.gain.ci_high) == pytest.approx((ref.ci_low, ref.ci_high))
    assert seg.gain.n == 4 and seg.verdict == GAINS


def test_a_curve_that_saturates_stops_gaining_after_its_last_resolved_gain() -> None:
    c = curve("depth", [1e6, 2e6, 4e6, 8e6], [0.60, 0.70, 0.7005, 0.6995])
    segs = marginal_gains(c)
    assert [s.verdict for s in segs] == [GAINS, UNRESOLVED, UNRESOLVED]
    assert all(s.gain.ci_low <= 0 <= s.gain.ci_high for s in segs[1:])
    assert stops_gaining(c, segs).startswith("stops gaining after p1")


def test_still_gaining_none_gaining_and_a_loss_are_said_as_such() -> None:
    up = curve("width", [1e6, 2e6, 4e6], [0.6, 0.65, 0.7])
    assert stops_gaining(up, marginal_gains(up)).startswith("still gaining at p2")
    flat = curve("resolution", [1e6, 2e6, 4e6], [0.6, 0.6005, 0.5995])
    segs = marginal_gains(flat)
    assert all(s.verdict == UNRESOLVED for s in segs)
    assert stops_gaining(flat, segs).startswith("no step's gain is resolved from 0")
    dip = curve("width", [1e6, 2e6, 4e6], [0.6, 0.5, 0.6])
    said = stops_gaining(dip, marginal_gains(dip))
    assert said.startswith("still gaining at p2") and "p0 -> p1 lost accuracy" in said
    down = curve("width", [1e6, 2e6, 4e6], [0.6, 0.7, 0.6])
    segs = marginal_gains(down)
    assert [s.verdict for s in segs] == [GAINS, LOSES]
    assert "1 of them below 0" in stops_gaining(down, segs)


def test_a_wide_interval_is_never_called_a_gain_and_one_seed_decides_nothing() -> None:
    noisy = curve("width", [1e6, 2e6], [0.60, 0.61], noise=(0.05, -0.05, 0.04, -0.04))
    noisy = CurveData("width", noisy.labels, noisy.macs, [noisy.acc[0], {s: v + (0.08 if s % 2 else -0.06)
                                                                        for s, v in noisy.acc[1].items()}])
    (seg,) = marginal_gains(noisy)
    assert seg.gain.mean > 0 and seg.gain.ci_low < 0 and seg.verdict == UNRESOLVED
    one = CurveData("width", ["a", "b"], [1e6, 2e6], [{0: 0.5}, {0: 0.9}])
    (seg,) = marginal_gains(one)
    assert seg.gain.n == 1 and seg.verdict == UNRESOLVED
    same = CurveData("width", ["a", "b"], [1e6, 1e6], [{0: 0.5}, {0: 0.9}])
    assert marginal_gains(same) == []  # no MACs change: no gain per doubling


def test_matching_interpolates_in_log_macs_seed_by_seed() -> None:
    c = curve("width", [1e6, 4e6], [0.60, 0.80])
    comp = {s: 0.75 + NOISE[s] + JITTER[s] for s in SEEDS}
    m = match_at_macs("phi=1", 2e6, comp, c)  # halfway in log-MACs
    assert m.between == ("p0", "p1") and m.t == pytest.approx(0.5)
    interp = {s: 0.5 * c.acc[0][s] + 0.5 * c.acc[1][s] for s in SEEDS}
    ref = paired_delta(comp, interp)
    assert m.delta is not None and m.delta.mean == pytest.approx(ref.mean)
    assert (m.delta.ci_low, m.delta.ci_high) == pytest.approx((ref.ci_low, ref.ci_high))
    assert m.verdict == BEATS  # 0.75 vs ~0.70 with a small spread
    worse = match_at_macs("phi=1", 2e6, {s: 0.65 + NOISE[s] + JITTER[s] for s in SEEDS}, c)
    assert worse.verdict == WORSE
    tied = match_at_macs("phi=1", 2e6, {s: 0.70 + NOISE[s] + (0.02 if s % 2 else -0.02) for s in SEEDS}, c)
    assert tied.delta.ci_low < 0 < tied.delta.ci_high and tied.verdict == TIED


def test_no_extrapolation_and_the_same_network_is_named() -> None:
    c = curve("depth", [1e6, 4e6], [0.60, 0.80])
    out = match_at_macs("phi=3", 9e6, {s: 0.9 for s in SEEDS}, c)
    assert out.delta is None and out.between is None and math.isnan(out.t)
    assert out.verdict == "outside the curve's MACs"
    same = match_at_macs("phi=0", 1e6, c.acc[0], c, same_as="p0")
    assert same.verdict == "same network as p0" and same.delta.mean == 0
    few = match_at_macs("phi=1", 2e6, {0: 0.9}, c)
    assert few.verdict.startswith("undecided")


def test_the_same_difference_on_every_seed_is_worded_as_a_zero_width_interval() -> None:
    """A compound point that is the curve's interpolation plus the same margin on every seed has a zero-width
    interval: it is not called a bare 'beats', and an identical one is 'identical', not 'tied within noise'."""
    c = curve("width", [1e6, 4e6], [0.60, 0.80])
    interp = {s: 0.5 * c.acc[0][s] + 0.5 * c.acc[1][s] for s in SEEDS}
    ahead = match_at_macs("phi=1", 2e6, {s: v + 0.05 for s, v in interp.items()}, c)
    assert ahead.delta is not None and ahead.delta.constant and ahead.delta.verdict == BEATS
    assert ahead.verdict == "beats on all 4 seeds by the same margin (zero-width interval: no noise measured)"
    same = match_at_macs("phi=1", 2e6, interp, c)
    assert same.verdict == "identical on all 4 seeds (difference 0)"
    flat = CurveData("width", ["a", "b"], [1e6, 2e6], [{s: 0.5 for s in SEEDS}, {s: 0.6 for s in SEEDS}])
    (seg,) = marginal_gains(flat)
    assert seg.verdict == GAINS  # the rule's value (stops_gaining reads it) is unchanged ...
    assert seg.words == "gains on all 4 seeds by the same margin (zero-width interval: no noise measured)"

"""The statistics module on known values: hand-computed cases, published examples, and scipy itself."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from nas_harness.results.stats import (
    ACCURACY,
    BEATS,
    TIED,
    WORSE,
    accuracy_difference,
    accuracy_interval,
    accuracy_intervals,
    difference_words,
    interval_text,
    kendall_tau,
    mean_interval,
    paired_delta,
    paired_words,
    rank_agreement,
    regret,
    spearman_rho,
    summarize,
    top_k_recall,
    verdict,
    wilson_interval,
)


def _wilson_by_hand(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    # Wilson (1927): (p + z²/2n ± z sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


@pytest.mark.parametrize(("k", "n"), [(742, 1000), (731, 1000), (111, 200), (0, 10), (10, 10), (1, 1), (5, 9)])
def test_wilson_matches_the_formula(k: int, n: int) -> None:
    lo, hi = wilson_interval(k, n)
    hlo, hhi = _wilson_by_hand(k, n)
    assert lo == pytest.approx(hlo, abs=1e-9) and hi == pytest.approx(hhi, abs=1e-9)
    assert 0.0 <= lo <= k / n <= hi <= 1.0


def test_issue_example_half_width_is_about_1_4_points_of_standard_error() -> None:
    # 74.2% on 1,000 images: binomial standard error 1.38 points, Wilson 95% interval about ±2.7 points
    lo, hi = accuracy_interval(0.742, 1000)
    assert math.sqrt(0.742 * 0.258 / 1000) == pytest.approx(0.0138, abs=1e-4)
    assert (lo, hi) == pytest.approx((0.7140, 0.7682), abs=1e-4)
    # 200 images at 55.5%: ±6.8 points (the scaling search's "±3.5 points" is one standard error)
    lo, hi = accuracy_interval(0.555, 200)
    assert hi - lo == pytest.approx(2 * 0.0677, abs=2e-3)


def test_accuracy_interval_unknowns_and_vectorised() -> None:
    assert all(math.isnan(v) for v in accuracy_interval(0.5, None))
    assert all(math.isnan(v) for v in accuracy_interval(float("nan"), 100))
    assert all(math.isnan(v) for v in accuracy_interval(0.5, 0))
    lo, hi = accuracy_intervals([0.742, None, 0.5], [1000, 1000, 2])
    assert lo[0] == pytest.approx(0.7140, abs=1e-4) and math.isnan(lo[1]) and hi[2] == pytest.approx(
        wilson_interval(1, 2)[1])
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_newcombe_difference_matches_the_published_examples() -> None:
    # Newcombe (1998), Statistics in Medicine 17:873-890, Table II, method 10 (hybrid score, no correction)
    d = accuracy_difference(56 / 70, 70, 48 / 80, 80)
    assert d.estimate == pytest.approx(0.2)
    assert (d.low, d.high) == pytest.approx((0.0524, 0.3339), abs=1e-4)
    d = accuracy_difference(9 / 10, 10, 3 / 10, 10)
    assert (d.low, d.high) == pytest.approx((0.1705, 0.8090), abs=1e-4)
    assert d.verdict == BEATS


def test_issue_example_is_tied_within_noise() -> None:
    # "beaten: #7 is cheaper and at least as accurate": 74.2% vs 73.1% on 1,000 images each
    d = accuracy_difference(0.742, 1000, 0.731, 1000)
    assert d.estimate == pytest.approx(0.011)
    assert d.low < 0 < d.high and d.verdict == TIED
    assert accuracy_difference(0.80, 1000, 0.70, 1000).verdict == BEATS
    assert accuracy_difference(0.70, 1000, 0.80, 1000).verdict == WORSE
    unknown = accuracy_difference(0.9, None, 0.1, 100)
    assert unknown.estimate == pytest.approx(0.8) and unknown.verdict == TIED


def test_verdict_rule() -> None:
    assert verdict(0.001, 0.02) == BEATS
    assert verdict(-0.02, -0.001) == WORSE
    assert verdict(-0.01, 0.01) == TIED
    assert verdict(0.0, 0.02) == TIED  # touching zero is not excluding it
    assert verdict(float("nan"), 1.0) == TIED


def test_summarize_against_scipy() -> None:
    xs = [0.71, 0.74, 0.69, 0.73]
    s = summarize(xs)
    lo, hi = sps.t.interval(0.95, 3, loc=np.mean(xs), scale=sps.sem(xs))
    assert (s.ci_low, s.ci_high) == pytest.approx((lo, hi))
    assert s.std == pytest.approx(np.std(xs, ddof=1))
    same = summarize([0.5, 0.5, 0.5])
    assert same.std == 0 and same.ci_low == same.ci_high == 0.5


def test_paired_delta_against_scipy_and_by_hand() -> None:
    a = {0: 0.81, 1: 0.87, 2: 0.93, 9: 0.5}
    b = {0: 0.80, 1: 0.85, 2: 0.90}
    d = paired_delta(a, b)
    # differences 0.01, 0.02, 0.03: mean 0.02, sd 0.01, t = 0.02 / (0.01 / sqrt 3), df 2
    assert d.seeds == (0, 1, 2) and d.n == 3
    assert d.t == pytest.approx(2 * math.sqrt(3))
    t = 2 * math.sqrt(3)
    assert d.p_value == pytest.approx(2 * (0.5 - t / (2 * math.sqrt(2 + t * t))))  # closed-form t(2) CDF
    ref = sps.ttest_rel([0.81, 0.87, 0.93], [0.80, 0.85, 0.90])
    ci = ref.confidence_interval()
    assert (d.ci_low, d.ci_high) == pytest.approx((ci.low, ci.high))
    assert d.ci_low == pytest.approx(0.02 - 4.302653 * 0.01 / math.sqrt(3), abs=1e-6)
    assert d.verdict == TIED  # the interval includes 0 (p = 0.074)
    clear = paired_delta({0: 0.9, 1: 0.91, 2: 0.92}, {0: 0.8, 1: 0.8, 2: 0.83})
    assert clear.verdict == BEATS
    flat = paired_delta({0: 0.5, 1: 0.6}, {0: 0.4, 1: 0.5})  # identical differences: no t statistic
    assert flat.mean == pytest.approx(0.1) and math.isnan(flat.p_value) and flat.std == 0
    assert paired_delta({0: 0.5}, {1: 0.5}).n == 0
    assert paired_delta({0: 0.9}, {0: 0.1}).verdict == TIED  # one pair decides nothing


def test_rank_correlations_hand_computed() -> None:
    # x = 1..4, y = 1,3,2,4: one discordant pair of six -> tau = (5 - 1) / 6; rho = 1 - 6*2/(4*15) = 0.8
    tau = kendall_tau([1, 2, 3, 4], [1, 3, 2, 4], n_resamples=200)
    assert tau.statistic == pytest.approx(4 / 6)
    assert tau.n == 4
    rho = spearman_rho([1, 2, 3, 4], [1, 3, 2, 4], n_resamples=200)
    assert rho.statistic == pytest.approx(0.8)
    rev = kendall_tau([1, 2, 3, 4, 5, 6], [6, 5, 4, 3, 2, 1], n_resamples=200)
    assert rev.statistic == pytest.approx(-1.0)
    assert rev.low == pytest.approx(-1.0) and rev.high == pytest.approx(-1.0)  # every resample is reversed


def test_rank_correlation_bootstrap_interval_against_scipy() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=12)
    y = x + rng.normal(scale=0.8, size=12)
    tau = kendall_tau(x, y, n_resamples=999, seed=5)
    boot = sps.bootstrap((x, y), lambda a, b: sps.kendalltau(a, b).statistic, paired=True, vectorized=False,
                         n_resamples=999, method="percentile", rng=np.random.default_rng(5))
    assert tau.statistic == pytest.approx(sps.kendalltau(x, y).statistic)
    assert tau.low == pytest.approx(boot.confidence_interval.low)
    assert tau.high == pytest.approx(boot.confidence_interval.high)
    assert tau.low < tau.statistic < tau.high
    # seeded: the same call gives the same interval
    assert kendall_tau(x, y, n_resamples=999, seed=5) == tau


def test_rank_correlation_edge_cases() -> None:
    one = kendall_tau([1.0], [2.0])
    assert one.n == 1 and math.isnan(one.statistic)
    flat = kendall_tau([1, 1, 1], [1, 2, 3], n_resamples=100)
    assert math.isnan(flat.statistic)
    nan_dropped = kendall_tau([1, 2, float("nan"), 4], [1, 2, 3, 4], n_resamples=100)
    assert nan_dropped.n == 3 and nan_dropped.statistic == pytest.approx(1.0)
    with pytest.raises(ValueError):
        kendall_tau([1, 2], [1, 2, 3])


def test_top_k_recall_and_regret() -> None:
    proxy = [0.9, 0.8, 0.7, 0.6, 0.5]
    truth = [0.70, 0.95, 0.60, 0.90, 0.10]
    # top-2 by proxy = {0, 1}; by truth = {1, 3}: one in common
    assert top_k_recall(proxy, truth, 2) == pytest.approx(0.5)
    assert top_k_recall(proxy, truth, 5) == 1.0
    assert top_k_recall(proxy, truth, 50) == 1.0  # k larger than the list: all of it
    # the proxy picks item 0 (truth 0.70); the truly best is 0.95
    assert regret(proxy, truth) == pytest.approx(0.25)
    assert regret(truth, truth) == 0.0
    out = rank_agreement(proxy, truth, k=2, n_resamples=100)
    assert out["n_archs"] == 5 and out["top_k_recall"] == 0.5 and out["regret"] == pytest.approx(0.25)
    assert out["kendall_tau"] == pytest.approx(sps.kendalltau(proxy, truth).statistic)
    assert len(out["kendall_tau_ci"]) == 2


def test_accuracy_means_are_clipped_to_their_range() -> None:
    s = summarize([0.1, 0.43], bounds=ACCURACY)  # a t interval over 2 runs reaches far below 0
    assert s.ci_low == 0.0 and s.ci_high <= 1.0
    assert summarize([0.1, 0.43]).ci_low < 0  # unclipped without bounds


def test_too_few_items_get_no_rank_interval() -> None:
    tau = kendall_tau([1, 2, 3, 4], [1, 2, 3, 4], n_resamples=200)  # a perfect ranking, 1 chance in 24
    assert tau.statistic == pytest.approx(1.0) and math.isnan(tau.low) and math.isnan(tau.high)
    assert 0 < tau.p_value < 0.1


def test_kendall_tau_difference_is_paired_and_agrees_with_scipy() -> None:
    import random

    from scipy.stats import kendalltau

    from nas_harness.results.stats import BEATS, TIED, kendall_tau_difference, verdict

    truth = list(range(12))
    d = kendall_tau_difference(truth, truth[::-1], truth, n_resamples=300, seed=0)
    assert d.statistic == pytest.approx(2.0) and d.low == pytest.approx(2.0) and verdict(d.low, d.high) == BEATS
    same = kendall_tau_difference(truth, truth, truth, n_resamples=300, seed=0)
    assert (same.statistic, same.low, same.high) == (0.0, 0.0, 0.0) and verdict(same.low, same.high) == TIED
    rng = random.Random(3)
    a, b, t = ([rng.random() for _ in range(15)] for _ in range(3))
    r = kendall_tau_difference(a, b, t, n_resamples=300, seed=1)
    assert r.statistic == pytest.approx(kendalltau(a, t).statistic - kendalltau(b, t).statistic)
    assert r.low <= r.statistic <= r.high and r.n == 15
    assert math.isnan(kendall_tau_difference(a[:5], b[:5], t[:5]).low)  # too few items for an interval


def test_mean_interval_is_the_t_interval_clipped_to_the_bounds_and_none_for_one_value() -> None:
    x = np.array([[0.0, 0.30, 0.5], [0.02, 0.32, 0.5]])  # 2 seeds x 3 trial counts: regret-like, near 0
    mean, low, high = mean_interval(x, bounds=(0.0, 1.0))
    for j in range(3):
        ref = summarize(x[:, j])  # the scalar rule, unclipped
        assert mean[j] == pytest.approx(ref.mean)
        assert low[j] == pytest.approx(max(ref.ci_low, 0.0)) and high[j] == pytest.approx(min(ref.ci_high, 1.0))
    assert summarize(x[:, 0]).ci_low < 0 and low[0] == 0.0  # the t interval of 2 seeds crosses the bound
    assert low[2] == high[2] == 0.5  # no spread: the point (worded elsewhere)
    m1, l1, h1 = mean_interval(x[:1], bounds=(0.0, 1.0))
    assert m1.tolist() == x[0].tolist() and np.isnan(l1).all() and np.isnan(h1).all()
    assert interval_text(float(l1[0]), float(h1[0]), 1) == "n/a (1 seed)"
    assert interval_text(0.01, 0.2, 2, 100.0, ".2f") == "[1.00, 20.00]"


def test_zero_width_paired_intervals_are_worded_honestly() -> None:
    """Identical arms are 'identical', not 'tied within noise: +0 [0, 0]'; the same non-zero difference on every
    seed keeps its verdict but says the interval has zero width; one pair decides nothing."""
    a = {0: 0.71, 1: 0.74, 2: 0.69}
    same = paired_delta(a, dict(a))
    assert same.identical and same.constant and (same.ci_low, same.ci_high) == (0.0, 0.0)
    assert same.verdict == TIED  # the rule's value is unchanged ...
    assert paired_words(same) == "identical on all 3 seeds (difference 0)"  # ... its wording is honest
    ahead = paired_delta({s: v + 0.25 for s, v in a.items()}, a)
    assert ahead.constant and not ahead.identical and ahead.verdict == BEATS
    assert paired_words(ahead) == "beats on all 3 seeds by the same margin (zero-width interval: no noise measured)"
    behind = paired_delta(a, {s: v + 0.25 for s, v in a.items()})
    assert paired_words(behind).startswith("worse on all 3 seeds by the same margin")
    assert paired_words(ahead, "gains").startswith("gains on all 3 seeds")
    noisy = paired_delta({0: 0.7, 1: 0.8, 2: 0.75}, {0: 0.6, 1: 0.61, 2: 0.62})
    assert not noisy.constant and paired_words(noisy) == noisy.verdict == BEATS
    assert paired_words(paired_delta({0: 0.7}, {0: 0.6})) == "undecided (one pair)"
    assert paired_words(paired_delta({0: 0.7}, {1: 0.6})) == paired_words(None) == ""
    assert difference_words(0.0, 0.0, 0.0, 8, TIED, "in every bootstrap resample of the 8 archs") == (
        "identical in every bootstrap resample of the 8 archs (difference 0)")
    assert difference_words(0.1, -0.2, 0.4, 8, TIED) == TIED

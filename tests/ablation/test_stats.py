"""Statistics on hand-computed numbers, and the Student-t implementation against published tables."""

from __future__ import annotations

import math

import pytest

from nas_harness.ablation.stats import paired_delta, summarize, variant_table


@pytest.mark.parametrize(
    ("values", "q975"),
    # Standard two-sided 95% critical values (any t table, e.g. NIST/SEMATECH e-Handbook 1.3.6.7.2): the
    # interval of the mean of n values with sample std 1 is mean ± t(0.975, n-1) / sqrt(n).
    [(2, 12.706), (3, 4.303), (4, 3.182), (5, 2.776), (6, 2.571), (10, 2.262), (20, 2.093), (30, 2.045)],
)
def test_summary_interval_uses_the_t_table(values: int, q975: float) -> None:
    import numpy as np

    xs = np.arange(values, dtype=float)
    xs = xs / xs.std(ddof=1)  # sample std exactly 1
    s = summarize(list(xs))
    assert s.std == pytest.approx(1.0)
    assert s.half_width * math.sqrt(values) == pytest.approx(q975, abs=5e-4)


def test_summarize_hand_computed() -> None:
    # values 0.80, 0.82, 0.84: mean 0.82, deviations ±0.02 -> var = 0.0008/2 = 0.0004, std 0.02,
    # CI half-width = t(0.975, 2) * 0.02 / sqrt(3) = 4.302653 * 0.011547 = 0.049683.
    s = summarize([0.80, 0.82, 0.84])
    assert s.n == 3
    assert s.mean == pytest.approx(0.82)
    assert s.std == pytest.approx(0.02)
    assert s.half_width == pytest.approx(4.302653 * 0.02 / math.sqrt(3), rel=1e-6)
    assert s.ci_low == pytest.approx(0.82 - 0.049683, abs=1e-6)
    one = summarize([0.5])
    assert one.mean == 0.5 and math.isnan(one.std) and math.isnan(one.ci_low)
    assert summarize([]).n == 0


def test_paired_delta_hand_computed_and_only_common_seeds() -> None:
    base = {0: 0.80, 1: 0.85, 2: 0.90, 3: 0.70}
    var = {0: 0.81, 1: 0.87, 2: 0.93, 5: 0.99}  # seed 3 missing in var, seed 5 missing in base
    d = paired_delta(var, base)
    # diffs 0.01, 0.02, 0.03: mean 0.02, std 0.01, t = 0.02 / (0.01/sqrt 3) = 3.4641, df 2
    assert d.seeds == (0, 1, 2)
    assert d.n == 3
    assert d.mean == pytest.approx(0.02)
    assert d.std == pytest.approx(0.01)
    assert d.t == pytest.approx(2 * math.sqrt(3))
    # two-sided p for t=3.4641, df=2 from the closed-form CDF
    t = 2 * math.sqrt(3)
    assert d.p_value == pytest.approx(2 * (0.5 - t / (2 * math.sqrt(2 + t * t))), rel=1e-9)
    assert d.p_value == pytest.approx(0.0742, abs=1e-4)
    assert d.ci_low == pytest.approx(0.02 - 4.302653 * 0.01 / math.sqrt(3), abs=1e-6)
    # An unpaired analysis would be much wider: the paired one removes the between-seed spread.
    unpaired_sd = summarize([0.81, 0.87, 0.93]).std
    assert d.std < unpaired_sd


def test_paired_delta_degenerate_cases() -> None:
    same = paired_delta({0: 0.5, 1: 0.6}, {0: 0.4, 1: 0.5})  # identical differences: zero spread
    assert same.mean == pytest.approx(0.1) and math.isnan(same.p_value)
    assert paired_delta({0: 0.5}, {1: 0.5}).n == 0


def test_variant_table_deltas_params_macs_and_failures() -> None:
    runs = [
        {"variant": "baseline", "seed": 0, "state": "ok", "test_acc": 0.80, "val_acc": 0.79, "params": 1000,
         "macs": 5000, "train_time_s": 10.0},
        {"variant": "baseline", "seed": 1, "state": "ok", "test_acc": 0.84, "val_acc": 0.83, "params": 1000,
         "macs": 5000, "train_time_s": 12.0},
        {"variant": "no_se", "seed": 0, "state": "ok", "test_acc": 0.78, "val_acc": 0.77, "params": 900,
         "macs": 4900, "train_time_s": 8.0},
        {"variant": "no_se", "seed": 1, "state": "failed"},
    ]
    rows = variant_table(runs, ["baseline", "no_se"], {"baseline": "a", "no_se": "b"})
    b, n = rows
    assert (b.n_ok, b.n_failed, n.n_ok, n.n_failed) == (2, 0, 1, 1)
    assert b.test.mean == pytest.approx(0.82) and b.train_time_s == pytest.approx(11.0)
    assert b.d_params == 0 and n.d_params == -100 and n.d_macs == -100
    assert n.delta_test is not None and n.delta_test.n == 1 and n.delta_test.mean == pytest.approx(-0.02)
    row = n.to_row()
    assert row["delta_test_pairs"] == 1 and row["params"] == 900 and row["arch"] == "b"


def test_ablation_table_words_zero_width_and_one_seed_intervals() -> None:
    """A variant equal to the baseline on every seed is 'identical', not 'tied within noise [+0.00, +0.00]'; a
    constant shift keeps its verdict with the zero-width note; one seed has no interval ('n/a (1 seed)')."""
    from nas_harness.ablation.report import ablation_table
    from nas_harness.report.document import to_markdown

    def runs(acc: dict[str, list[float]]) -> list[dict]:
        return [{"variant": v, "seed": s, "state": "ok", "test_acc": a, "val_acc": a, "params": 1, "macs": 1,
                 "train_time_s": 1.0} for v, accs in acc.items() for s, a in enumerate(accs)]

    acc = {"baseline": [0.60, 0.64], "same": [0.60, 0.64], "up": [0.61, 0.65]}
    md = to_markdown([ablation_table(variant_table(runs(acc), list(acc), {v: v for v in acc}), "baseline")])
    assert "+0.00 (n=2): identical on all 2 seeds (difference 0)" in md
    assert "+1.00 (n=2): beats on all 2 seeds by the same margin (zero-width interval: no noise measured)" in md
    assert "[+0.00, +0.00]" not in md and "[+1.00, +1.00]" not in md
    one = {v: a[:1] for v, a in acc.items()}
    md = to_markdown([ablation_table(variant_table(runs(one), list(one), {v: v for v in one}), "baseline")])
    assert "n/a (1 seed)" in md and "(n=1): undecided (one pair)" in md

"""The report says "beaten" only where the intervals say so, and "tied within noise" otherwise."""

from __future__ import annotations

import optuna
import pytest

from nas_harness.presets import efficientnet_b0
from nas_harness.report import build_report, reference_table, to_markdown
from nas_harness.report.study_report import pareto_table
from nas_harness.results import trials_frame
from nas_harness.scaling import scale_arch


def _study(points: list[tuple[str | None, float, float, int | None]]) -> optuna.Study:
    """(reference name or None, MACs, val_acc, val_n) per trial; archs are distinct B0 widths."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.set_user_attr("objective", "multi")
    for i, (ref, macs, acc, n) in enumerate(points):
        attrs = {"arch": str(scale_arch(efficientnet_b0(), width=0.25 + 0.05 * i)), "macs": macs, "params": 1000 + i,
                 "val_acc": acc, "full_budget": True, "epochs": 2.0, "epochs_planned": 2.0}
        if n is not None:
            attrs["val_n"] = n
        if ref:
            attrs["reference"] = ref
        study.add_trial(optuna.trial.create_trial(values=[acc, macs], user_attrs=attrs))
    return study


def _glance(df, tmp_path) -> str:
    md = to_markdown(build_report(df, "memory", [], tmp_path))
    return md.split("## Result at a glance")[1].split("## ")[0]


def test_issue_example_is_tied_not_beaten(tmp_path) -> None:
    # the quickstart case from the issue: #1 is cheaper, 74.2% vs the reference's 73.1%, 1,000 images each
    df = trials_frame(_study([("base", 35e6, 0.731, 1000), (None, 30e6, 0.742, 1000), (None, 20e6, 0.60, 1000)]))
    text = _glance(df, tmp_path)
    assert "beaten:" not in text
    assert "Reference base (73.10% [70.3, 75.8] at 35.00 MMACs): not beaten beyond noise; tied within noise: " \
           "#1 +1.10 pp [-2.76, +4.96] at 30.00 MMACs" in text
    assert "Wilson 95% on the val split (1000 images)" in text
    assert "nas-harness confirm" in text
    t = reference_table(df)
    row = dict(zip(t.header, t.rows[0]))
    assert row["dominated by"] == "#1" and row["beaten by (95%)"] == "none" and row["val 95% CI"] == "[70.3, 75.8]"


def test_clear_win_is_called_beaten(tmp_path) -> None:
    df = trials_frame(_study([("base", 35e6, 0.70, 5000), (None, 30e6, 0.80, 5000)]))
    text = _glance(df, tmp_path)
    assert "Reference base (70.00% [68.7, 71.3] at 35.00 MMACs): beaten: #1 +10.00 pp [" in text
    assert "(no more MACs, more accurate beyond noise)" in text
    assert reference_table(df).rows[0][reference_table(df).header.index("beaten by (95%)")] == "#1"


def test_more_accurate_but_costlier_is_not_a_win(tmp_path) -> None:
    df = trials_frame(_study([("base", 35e6, 0.70, 5000), (None, 40e6, 0.80, 5000)]))
    assert "Reference base (70.00% [68.7, 71.3] at 35.00 MMACs): not dominated by any search arch." in _glance(
        df, tmp_path)


def test_top_archs_tied_within_noise_are_named(tmp_path) -> None:
    # the scaling search's case: 55.5% vs 55.0% on 200 images cannot be ranked; 55.5% vs 40% can
    df = trials_frame(_study([(None, 30e6, 0.555, 200), (None, 20e6, 0.55, 200), (None, 10e6, 0.40, 200)]))
    text = _glance(df, tmp_path)
    assert "Most accurate search arch: #0 with 55.50% val_acc [48.6, 62.2] at 30.00 MMACs. Tied within noise " \
           "with #1 (95% interval of the difference includes 0)" in text
    assert "#2" not in text.split("Tied within noise with")[1].split("(")[0]
    t = pareto_table(df)
    assert t.header[:4] == ["rank", "trial", "val acc %", "val 95% CI"]
    assert [r[3] for r in t.rows] == ["[48.6, 62.2]", "[48.1, 61.7]", "[33.5, 46.9]"]


def test_without_split_sizes_nothing_is_beaten(tmp_path) -> None:
    df = trials_frame(_study([("base", 35e6, 0.70, None), (None, 30e6, 0.90, None)]))
    text = _glance(df, tmp_path)
    assert "beaten:" not in text and "tied within noise: #1 +20.00 pp at 30.00 MMACs" in text
    assert "did not record its val split size" in text
    assert "val 95% CI" not in reference_table(df).header  # no interval: the column is left out


@pytest.mark.parametrize("metric", ["val_acc", "reward"])
def test_report_builds_for_metrics(tmp_path, metric: str) -> None:
    df = trials_frame(_study([("base", 35e6, 0.70, 1000), (None, 30e6, 0.72, 1000)]))
    df["reward"] = df["val_acc"]
    assert "Result at a glance" in to_markdown(build_report(df, "memory", [], tmp_path, metric=metric))


def test_reference_archs_are_counted_by_arch_not_by_trial() -> None:
    """A failed reference trial and its retry are one reference arch (a fresh user's report said 3 for 2)."""
    import pandas as pd

    from nas_harness.report.settings import _references

    df = pd.DataFrame({"is_reference": [True, True, True, False], "arch": ["a", "b", "b", "c"]})
    assert _references(df) == "2 reference archs (3 trials: failed ones retried)"
    assert _references(df.drop(index=1)) == "2 reference archs"
    assert _references(df.iloc[[0, 3]]) == "1 reference arch"

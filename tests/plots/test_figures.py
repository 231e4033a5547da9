from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from helpers.fakes import study_folder

from nas_harness.cli import main
from nas_harness.errors import ConfigError
from nas_harness.plots import (
    param_importances,
    plot_accuracy_vs_cost,
    plot_by_choice,
    plot_progress,
    write_comparison_figures,
    write_study_figures,
)
from nas_harness.plots._style import cost_unit, spread_labels
from nas_harness.presets import efficientnet_b0
from nas_harness.results import (
    ReferencePoint,
    hypervolume,
    load_study,
    pareto_front,
    study_frame,
)

ARCH = str(efficientnet_b0())  # a real arch string: readers parse the stored ones


@pytest.fixture(scope="module")
def df(study_dir: Path):
    return study_frame(study_dir)


def _check_files(paths: list[Path]) -> None:
    for p in paths:
        assert p.is_file()
        if p.suffix == ".png":
            assert p.stat().st_size > 8_000, p
            assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        elif p.suffix == ".svg":
            root = ET.parse(p).getroot()
            assert root.tag.endswith("svg")
            assert len(list(root.iter())) > 50, p  # a real drawing, not an empty canvas


@pytest.mark.slow
def test_write_study_figures_writes_the_standard_set(study_dir: Path) -> None:
    paths = write_study_figures(study_dir)
    stems = {p.stem for p in paths}
    assert {"accuracy_vs_macs", "accuracy_vs_params", "hypervolume", "best_val_acc", "importance"} <= stems
    assert any(s.startswith("accuracy_by_s") for s in stems)
    assert all(p.parent == study_dir / "figures" for p in paths)
    assert {p.suffix for p in paths} == {".png", ".svg"} and len(paths) == 2 * len(stems)
    _check_files(paths)


def test_accuracy_vs_macs_shows_front_references_and_failures(df) -> None:
    fig = plot_accuracy_vs_cost(df)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert "MMACs" in ax.get_xlabel() and "32 px" in ax.get_xlabel()
    assert "%" in ax.get_ylabel() and "fake" in ax.get_title()
    front = pareto_front(df)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert f"Pareto front ({len(front)})" in labels
    assert {"reference (B0 family)", "failed (2)", "pruned / stopped early", "search trials (25)"} <= set(labels)
    # the step line passes through every front point (x in MMACs, y in %)
    (step,) = [ln for ln in ax.get_lines() if ln.get_label().startswith("Pareto")]
    xs, ys = step.get_data()
    assert list(xs[:-1]) == pytest.approx(list(front["macs"] / 1e6))
    assert list(ys[:-1]) == pytest.approx(list(front["val_acc"] * 100))
    texts = {t.get_text() for t in ax.texts}
    assert {"b0", "b0-w0.5"} <= texts
    assert set(front.sort_values("front_rank")["name"].head(5)) <= texts
    # labels were spread so that none overlap
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in ax.texts]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not a.overlaps(b)


def test_by_choice_colours_each_value_and_rejects_unknown_choice(df) -> None:
    fig = plot_by_choice(df, "s5_se")
    leg = fig.legends[0]
    assert leg.get_title().get_text() == "s5_se"
    labels = [t.get_text() for t in leg.get_texts()]
    full = df[(df["state"] == "COMPLETE") & df["full_budget"] & ~df["is_reference"]]
    for value, n in full["s5_se"].value_counts().items():
        assert f"{value} ({n})" in labels
    with pytest.raises(ConfigError, match=r"choice: 's9_se' is not a parameter.*allowed: s1_kernel"):
        plot_by_choice(df, "s9_se")


def test_progress_curve_ends_at_the_study_hypervolume(df) -> None:
    ref = ReferencePoint(50e6, 0.5)
    fig = plot_progress([df], metric="hypervolume", reference=ref)
    ax = fig.axes[0]
    (line,) = [ln for ln in ax.get_lines() if ln.get_label() == "fake"]
    assert line.get_ydata()[-1] == pytest.approx(hypervolume(df, ref))
    assert len(line.get_xdata()) == int((~df["is_reference"]).sum())
    # the reference archs' own hypervolume is the dashed bar to clear
    (bar,) = [ln for ln in ax.get_lines() if ln.get_label() == "reference archs"]
    refs = df[df["is_reference"]]
    assert bar.get_ydata()[0] == pytest.approx(hypervolume(refs, ref, include_reference=True))
    with pytest.raises(ConfigError, match="metric: 'nope'"):
        plot_progress([df], metric="nope")


def test_importance_over_varying_choices(study_dir: Path) -> None:
    imp = param_importances(load_study(study_dir))
    assert sum(imp.values()) == pytest.approx(1.0)
    assert all(k.startswith("s") for k in imp) and not any(k.endswith("_width") for k in imp)  # width fixed
    assert list(imp.values()) == sorted(imp.values(), reverse=True)


@pytest.mark.slow
def test_compare_two_studies(tmp_path: Path, study_dir: Path) -> None:
    other = study_folder(tmp_path, name="other", seed=3, n=12)
    paths = write_comparison_figures([(study_dir, None), (other, None)], tmp_path / "cmp")
    assert {p.name for p in paths} >= {"compare_hypervolume.png", "compare_fronts.svg"}
    _check_files(paths)
    with pytest.raises(ConfigError, match="compare: need at least 2"):
        write_comparison_figures([(study_dir, None)], tmp_path / "cmp")


def test_units_and_label_spreading() -> None:
    assert cost_unit("macs", [3e5, 4.2e8]) == (1e6, "MMACs")
    assert cost_unit("macs", [2.1e9]) == (1e9, "GMACs")
    assert cost_unit("macs", [5e4]) == (1e3, "kMACs")
    assert cost_unit("params", [5.3e6]) == (1e6, "millions")
    from nas_harness.plots._style import new_figure

    fig, ax = new_figure()
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    texts = [ax.annotate(f"#{i}", (0.5, 0.5), xytext=(0, 0), textcoords="offset points") for i in range(4)]
    spread_labels(ax, texts)
    r = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(r) for t in texts]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    # a right-aligned label on a point at the left edge is flipped to the inside
    edge = ax.annotate("#123456", (0.0, 0.2), xytext=(-4, 5), textcoords="offset points", ha="right")
    spread_labels(ax, [edge])
    assert edge.get_ha() == "left" and edge.get_window_extent(r).x0 >= ax.get_window_extent(r).x0


@pytest.mark.slow
def test_cli_plot(study_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "figs"
    assert main(["plot", str(study_dir), "--out", str(out), "--format", "png", "--choice", "s2_kernel"]) == 0
    printed = capsys.readouterr().out.split()
    assert f"{out}/accuracy_by_s2_kernel.png" in printed and all(Path(p).is_file() for p in printed)
    assert main(["plot", str(study_dir), "--choice", "bogus"]) == 2
    assert "choice: 'bogus'" in capsys.readouterr().err
    assert main(["plot", str(tmp_path / "missing")]) == 2


def test_best_accuracy_curve_and_reference_bar(df) -> None:
    fig = plot_progress([df], metric="best_val_acc")
    ax = fig.axes[0]
    (line,) = [ln for ln in ax.get_lines() if ln.get_label() == "fake"]
    search = df[(df["state"] == "COMPLETE") & df["full_budget"] & ~df["is_reference"]]
    assert line.get_ydata()[-1] == pytest.approx(100 * search["val_acc"].max())
    refs = df[df["is_reference"]]
    best_ref = refs.loc[refs["val_acc"].idxmax()]
    (bar,) = [ln for ln in ax.get_lines() if ln.get_label() == f"best reference ({best_ref['name']})"]
    assert bar.get_ydata()[0] == pytest.approx(100 * best_ref["val_acc"])


def test_budget_line_at_the_mac_budget(df) -> None:
    budget_df = df.copy()
    budget_df.attrs = dict(df.attrs, config={"objective": {"kind": "budget", "max_macs": 30e6}})
    ax = plot_accuracy_vs_cost(budget_df).axes[0]
    (line,) = [ln for ln in ax.get_lines() if ln.get_label() == "budget"]
    assert line.get_xdata()[0] == pytest.approx(30.0)  # in MMACs
    assert not [ln for ln in plot_accuracy_vs_cost(df).axes[0].get_lines() if ln.get_label() == "budget"]


def test_nearly_empty_studies_skip_what_they_cannot_show(tmp_path: Path) -> None:
    import optuna
    from optuna.trial import TrialState

    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'study.db'}", study_name="empty")
    assert write_study_figures(tmp_path) == []
    study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL,
                                              user_attrs={"arch": ARCH, "macs": 5e6, "fail_reason": "oom"}))
    # only the scatter (showing the failure) can be drawn; no front, no progress, no importance
    assert sorted(p.name for p in write_study_figures(tmp_path, formats=["png"])) == ["accuracy_vs_macs.png"]


def test_reward_study_draws_the_iso_reward_curve_through_the_best_trial(tmp_path: Path) -> None:
    import optuna

    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'study.db'}", study_name="rw", direction="maximize")
    obj = {"kind": "reward", "target_macs": 20e6, "alpha": -0.07, "beta": -0.07, "constraint": "soft"}
    study.set_user_attr("objective", "reward")
    study.set_user_attr("config", {"objective": obj})
    for macs, acc in [(10e6, 0.80), (20e6, 0.84), (40e6, 0.86)]:
        reward = acc * (macs / 20e6) ** -0.07
        study.add_trial(optuna.trial.create_trial(value=reward, user_attrs={
            "arch": ARCH, "macs": macs, "val_acc": acc, "reward": reward, "full_budget": True}))
    df = study_frame(tmp_path)
    ax = plot_accuracy_vs_cost(df).axes[0]
    (iso,) = [ln for ln in ax.get_lines() if ln.get_label().startswith("iso-reward")]
    best = df.loc[df["reward"].idxmax()]
    x, y = iso.get_data()
    assert float(np.interp(np.log(best["macs"] / 1e6), np.log(x), y)) == pytest.approx(100 * best["val_acc"], rel=1e-3)
    (target,) = [ln for ln in ax.get_lines() if ln.get_label() == "target MACs T"]
    assert target.get_xdata()[0] == pytest.approx(20.0)


def test_progress_ticks_are_whole_trials(df) -> None:
    ax = plot_progress([df.head(9)], metric="best_val_acc").axes[0]  # 7 search trials: default ticks are 1.5, 2.5
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)

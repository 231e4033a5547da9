"""What a new user found wrong with the figures, each checked on the figure objects: error bars on every
point, named in the legend; nothing cut at the plot's edge; the legend off the data; readable log ticks;
progress over trial numbers with the best's interval; a caveat on thin importance; stale figures removed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest
from matplotlib.collections import LineCollection, PolyCollection

from nas_harness.plots import plot_accuracy_vs_cost, plot_importance, plot_progress, write_study_figures
from nas_harness.plots._style import log_cost_axis, new_figure, visible_ticks
from nas_harness.plots.progress import BAND_NOTE
from nas_harness.presets import efficientnet_b0
from nas_harness.results import accuracy_interval, study_frame, trials_frame
from nas_harness.scaling import scale_arch

# (reference name or None, macs, val_acc); numbers 0..7
POINTS = [("base", 35e6, 0.731), (None, 30e6, 0.742), (None, 20e6, 0.70), (None, 25e6, 0.69), (None, 45e6, 0.78),
          (None, 40e6, 0.61), (None, 22e6, 0.75), (None, 28e6, 0.74)]


def _study(storage: str | None = None, objective: str = "multi") -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    directions = ["maximize", "minimize"] if objective == "multi" else ["maximize"]
    study = optuna.create_study(storage=storage, study_name="faults", directions=directions)
    study.set_user_attr("objective", objective)
    obj = {"kind": objective, "cost": "macs"} | ({"target_macs": 30e6} if objective == "reward" else {})
    study.set_user_attr("config", {"objective": obj})
    dists = {"s1_kernel": optuna.distributions.CategoricalDistribution([3, 5]),
             "s2_se": optuna.distributions.CategoricalDistribution([True, False])}
    for i, (ref, macs, acc) in enumerate(POINTS):
        reward = acc * (macs / 30e6) ** -0.07
        attrs = {"arch": str(scale_arch(efficientnet_b0(), width=0.25 + 0.05 * i)), "macs": macs, "params": 10 + i,
                 "val_acc": acc, "val_n": 1000, "reward": reward, "full_budget": True, "epochs": 2.0,
                 "epochs_planned": 2.0}
        if ref:
            attrs["reference"] = ref
        values = [acc, macs] if objective == "multi" else [reward]
        params = {"s1_kernel": 3 + 2 * (i % 2), "s2_se": i % 3 == 0}
        study.add_trial(optuna.trial.create_trial(values=values, user_attrs=attrs, params=params, distributions=dists))
    return study


def _bars(ax) -> list[np.ndarray]:
    out = []
    for coll in ax.collections:
        if isinstance(coll, LineCollection):
            out += [np.asarray(seg) for seg in coll.get_segments() if len(seg) == 2 and seg[0][0] == seg[1][0]]
    return out


def test_every_point_has_its_interval_named_in_the_legend_and_nothing_is_cut() -> None:
    df = trials_frame(_study())
    fig = plot_accuracy_vs_cost(df)
    ax = fig.axes[0]
    bars = _bars(ax)
    for _, r in df.iterrows():  # every trial, on the front or not, reference or not
        lo, hi = accuracy_interval(r["val_acc"], 1000)
        assert any(np.isclose(b[0][0], r["macs"] / 1e6) and np.allclose(sorted(b[:, 1]), [100 * lo, 100 * hi])
                   for b in bars), r["name"]
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "95% Wilson interval (val split, 1000 images)" in labels
    ends = np.concatenate([b[:, 1] for b in bars])
    y0, y1 = ax.get_ylim()
    assert y0 < ends.min() and ends.max() < y1  # the lowest point (61 %) keeps its whole bar too
    # the legend sits outside the data area; labels carry a white box, so no line runs through them
    r = fig.canvas.get_renderer()
    fig.canvas.draw()
    assert not fig.legends[0].get_window_extent(r).overlaps(ax.get_window_extent(r))
    assert ax.get_legend() is None
    assert ax.texts and all(t.get_bbox_patch() is not None for t in ax.texts)


@pytest.mark.parametrize(("lo", "hi", "least"), [(20, 60, 4), (20, 25, 4), (23, 69, 4), (0.3, 3, 4), (1, 1000, 4),
                                                 (0.05, 900, 3)])
def test_log_axis_labels_enough_ticks(lo: float, hi: float, least: int) -> None:
    _fig, ax = new_figure()
    log_cost_axis(ax, lo, hi)
    ticks = visible_ticks(ax)
    assert len(ticks) >= least, ticks
    assert ax.get_xscale() == "log" and all(float(t) > 0 for t in ticks)


def test_progress_is_numbered_by_trial_and_the_best_carries_its_interval() -> None:
    df = trials_frame(_study(objective="reward"))
    search = df[~df["is_reference"]]
    for metric, key, scale in (("best_val_acc", "val_acc", 100.0), ("best_reward", "reward", 1.0)):
        fig = plot_progress([df], metric=metric)
        ax = fig.axes[0]
        (line,) = [ln for ln in ax.get_lines() if ln.get_label() == "faults"]
        assert list(line.get_xdata()) == search["number"].tolist()  # the #N used everywhere, references skipped
        assert "Trial #" in ax.get_xlabel()
        (band,) = [c for c in ax.collections if isinstance(c, PolyCollection)]
        assert band.get_label() == "95% Wilson interval of the best"
        best = search.loc[search[key].idxmax()]
        lo, hi = accuracy_interval(best["val_acc"], 1000)
        factor = best[key] / best["val_acc"]
        edges = band.get_paths()[0].vertices[:, 1]
        assert np.isclose(edges, lo * factor * scale).any() and edges.min() <= lo * factor * scale + 1e-9
        assert edges.max() == pytest.approx(hi * factor * scale)
        y0, y1 = ax.get_ylim()
        assert y0 < edges[np.isfinite(edges)].min() and edges.max() < y1  # the range covers every band
        assert BAND_NOTE in [t.get_text() for t in ax.texts]
    hv = plot_progress([df.assign(reward=np.nan)], metric="hypervolume").axes[0]
    (line,) = [ln for ln in hv.get_lines() if ln.get_label() == "faults"]
    assert list(line.get_xdata()) == search["number"].tolist()


def test_importance_of_a_small_study_carries_a_caveat(tmp_path: Path) -> None:
    study = _study(f"sqlite:///{tmp_path / 'study.db'}")
    fig = plot_importance(study)
    caveat = fig.get_supxlabel()
    assert caveat.startswith("Caveat: only 8 trials") and "too little data to rank" in caveat.replace("\n", " ")
    assert "8 trials" in fig.axes[0].get_xlabel()


def test_stale_figures_of_an_earlier_run_are_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nas_harness.plots.study as study_figures

    def quick_save(fig, out, stem, formats):  # the files' pixels do not matter here, only which files exist
        out.mkdir(parents=True, exist_ok=True)
        paths = [out / f"{stem}.{fmt}" for fmt in formats]
        for p in paths:
            p.write_text(stem)
        return paths

    monkeypatch.setattr(study_figures, "save", quick_save)
    folder = tmp_path / "faults"
    folder.mkdir()
    _study(f"sqlite:///{folder / 'study.db'}")
    figures = folder / "figures"
    figures.mkdir()
    (figures / "notes.png").write_bytes(b"user file")
    (figures / "accuracy_by_mine.png").write_bytes(b"a user file with a harness-like name")
    first = write_study_figures(folder, formats=["png"], choice="s2_se")
    assert (figures / "accuracy_by_s2_se.png") in first
    second = write_study_figures(folder, formats=["png"], choice="s1_kernel")  # colour by another choice now
    now = {p.name for p in figures.iterdir()}
    assert {p.name for p in second} <= now
    stale = {p.name for p in first} - {p.name for p in second}
    assert stale == {"accuracy_by_s2_se.png"} and not (stale & now)
    assert {"notes.png", "accuracy_by_mine.png"} <= now  # never a file the harness did not write
    assert study_frame(folder).attrs["study_name"] == "faults"


def test_importance_caveat_words() -> None:
    from nas_harness.plots.importance import importance_caveat

    assert importance_caveat({"a": 0.5, "b": 0.3, "c": 0.2}, 40) is None
    tied = {f"p{i}": 0.039 for i in range(7)} | {"x": 0.5, "y": 0.227}
    assert importance_caveat(tied, 10) == ("Caveat: only 10 trials; 7 choices tied at 0.039: too little data to "
                                           "rank these choices")
    assert importance_caveat({"a": 0.4, "b": 0.4, "c": 0.1, "d": 0.1}, 50) == (
        "Caveat: 2 choices tied at 0.400 (and 2 more in 1 other ties): too little data to rank these choices")

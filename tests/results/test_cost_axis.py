"""The study's cost axis (``[objective] cost``: macs, params or latency) is the one every output uses: the
search's end summary, the figures (hypervolume reference point, fronts), the report, ``export``'s header and
ranking, and ``confirm --by pareto``.  One study whose MACs, parameter and latency orders differ, so each cost
has its own front."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from nas_harness.cli import main
from nas_harness.cli._search import best_line
from nas_harness.evaluation.confirm import analyze
from nas_harness.evaluation.recipe import reference_candidates, search_candidates
from nas_harness.evaluation.store import StoredRun
from nas_harness.presets import efficientnet_b0
from nas_harness.report import write_report
from nas_harness.results import (
    ReferencePoint,
    cost_text,
    default_reference_point,
    export_arch,
    hypervolume,
    pareto_front,
    study_cost,
    study_frame,
)
from nas_harness.scaling import scale_arch

# (macs, params, latency ms, val_acc); trial 0 is the reference b0.
POINTS = [(40e6, 500e3, 4.0, 0.80), (10e6, 900e3, 1.0, 0.70), (20e6, 300e3, 3.0, 0.78), (30e6, 200e3, 5.0, 0.82),
          (50e6, 800e3, 2.0, 0.86), (60e6, 100e3, 6.0, 0.75)]
FRONTS = {"macs": ["#4", "#3", "#2", "#1"], "params": ["#4", "#3", "#5"], "latency": ["#4", "#1"]}
KEY = {"macs": "macs", "params": "params", "latency": "latency_ms"}
COSTS = ["macs", "params", "latency"]


def _study(root: Path, cost: str) -> Path:
    folder = root / f"c-{cost}"
    folder.mkdir(parents=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=f"sqlite:///{folder / 'study.db'}", study_name=f"c-{cost}",
                                directions=["maximize", "minimize"])
    study.set_user_attr("objective", "multi")
    study.set_user_attr("config", {
        "name": f"c-{cost}", "objective": {"kind": "multi", "cost": cost},
        "data": {"dataset": "fashion_mnist", "resolution": 32, "channels": 1},
        "trial": {"stem_stride": 1, "macs_resolution": 224, "macs_num_classes": 1000}})
    b0 = efficientnet_b0()
    for i, (macs, params, ms, acc) in enumerate(POINTS):
        attrs = {"arch": str(scale_arch(b0, width=0.25 + 0.05 * i, depth=0.34)), "macs": macs, "params": params,
                 "latency_ms": ms, "val_acc": acc, "val_n": 1000, "full_budget": True, "epochs": 1.0,
                 "epochs_planned": 1.0, "macs_resolution": 224}
        if i == 0:
            attrs["reference"] = "b0"
        study.add_trial(optuna.trial.create_trial(values=[acc, attrs[KEY[cost]]], user_attrs=attrs))
    return folder


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("costs")
    return {cost: _study(root, cost) for cost in COSTS}


@pytest.mark.parametrize("cost", COSTS)
def test_one_place_decides_the_cost_and_the_front(studies: dict[str, Path], cost: str) -> None:
    df = study_frame(studies[cost])
    assert study_cost(df) == KEY[cost]
    assert pareto_front(df, study_cost(df)).sort_values("front_rank")["name"].tolist() == FRONTS[cost]
    old = df.copy()
    old.attrs = {k: v for k, v in df.attrs.items() if k != "config"}  # a study that did not record its cost
    assert study_cost(old) == "macs"


@pytest.mark.parametrize("cost", COSTS)
def test_search_summary_line_quotes_the_study_cost(cost: str) -> None:
    best = {"number": 2, "arch": "a", "val_acc": 0.382, "macs": 50_306_336, "params": 473_210, "latency_ms": 3.21}
    line = best_line(best, KEY[cost])
    assert {"macs": "macs=50,306,336", "params": "params=473,210", "latency": "latency=3.21ms"}[cost] in line
    assert sum(w in line for w in ("macs=", "params=", "latency=")) == 1  # only the study's own cost


@pytest.mark.parametrize("cost", COSTS)
def test_figures_use_the_study_cost(studies: dict[str, Path], cost: str, monkeypatch: pytest.MonkeyPatch,
                                    tmp_path: Path) -> None:
    import nas_harness.plots.study as study_figures

    drawn: dict[str, object] = {}

    def keep(fig, out, stem, formats):  # the figure objects are what is checked; rendering them is not
        drawn[stem] = fig
        return [out / f"{stem}.{fmt}" for fmt in formats]

    monkeypatch.setattr(study_figures, "save", keep)
    study_figures.write_study_figures(studies[cost], out_dir=tmp_path, formats=["png"])
    df = study_frame(studies[cost])
    key = KEY[cost]
    ref = default_reference_point(df, key)
    ax = drawn["hypervolume"].axes[0]
    note = next(t.get_text() for t in ax.texts if t.get_text().startswith("ref. point"))
    assert note == f"ref. point: {cost_text(ref.cost, key)}, acc 0%"
    (search,) = [ln for ln in ax.get_lines() if ln.get_label() == f"c-{cost}"]
    assert search.get_ydata()[-1] == pytest.approx(hypervolume(df, ref, key))
    (bar,) = [ln for ln in ax.get_lines() if ln.get_label() == "reference archs"]
    refs = df[df["is_reference"]]
    assert bar.get_ydata()[0] == pytest.approx(hypervolume(refs, ref, key, include_reference=True))
    choice = [s for s in drawn if s.startswith("accuracy_by_")]
    word = {"macs": "MACs", "params": "Parameters", "latency": "Latency"}[cost]
    assert all(drawn[s].axes[0].get_xlabel().startswith(word) for s in choice)


@pytest.mark.parametrize("cost", COSTS)
def test_report_hypervolume_and_front_use_the_study_cost(studies: dict[str, Path], cost: str,
                                                         tmp_path: Path) -> None:
    paths = write_report(studies[cost], out_dir=tmp_path, figures=False)
    md = paths.markdown.read_text()
    df = study_frame(studies[cost])
    key = KEY[cost]
    ref = default_reference_point(df, key)
    refs = df[df["is_reference"]]
    assert (f"reference point {cost_text(ref.cost, key)}, accuracy 0%): search front "
            f"{hypervolume(df, ref, key):.4f}, reference archs alone "
            f"{hypervolume(refs, ref, key, include_reference=True):.4f}.") in md
    lines = md.split("## Pareto front")[1].split("\n## ")[0].splitlines()
    rows = [ln.split(" | ")[1] for ln in lines if ln.startswith("| ") and ln.split(" | ")[0] != "| rank"]
    assert rows == FRONTS[cost]
    # a reference point given in the study's units is used as given
    given = ReferencePoint({"macs": 70e6, "params": 1e6, "latency": 8.0}[cost])
    md = write_report(studies[cost], out_dir=tmp_path / "r", figures=False, reference=given).markdown.read_text()
    assert f"reference point {cost_text(given.cost, key)}" in md


@pytest.mark.parametrize("cost", COSTS)
def test_export_ranks_and_quotes_the_study_cost(studies: dict[str, Path], cost: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    for rank, name in enumerate(FRONTS[cost], start=1):
        assert export_arch(study_frame(studies[cost]), rank=rank, by="pareto").name == name
    assert main(["export", str(studies[cost]), "--by", "pareto", "--rank", "2", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    number = int(FRONTS[cost][1][1:])
    macs, params, ms, acc = POINTS[number]
    value = {"macs": macs, "params": params, "latency": ms}[cost]
    assert out[0] == f"# c-{cost} trial {number} (#{number}): val_acc {acc:.2%}, {cost_text(value, KEY[cost])}"
    # why the two parameter counts differ, beside both
    assert "1,000 classes, 3 input channels" in out[1] and "10 classes and 1 input channel" in out[1]
    build = (tmp_path / "rank2_pareto_build.py").read_text()
    assert f"the study's records count {int(params):,} for the deployed network" in build


@pytest.mark.parametrize("cost", COSTS)
def test_confirm_by_pareto_takes_the_study_cost_front(studies: dict[str, Path], cost: str) -> None:
    df = study_frame(studies[cost])
    top = search_candidates(df, 2, "pareto")
    assert [c.label for c in top] == FRONTS[cost][:2]
    cands = top + reference_candidates(df)
    # fresh-seed means equal to the search numbers: the front of the means is the study's front on its cost
    runs = [StoredRun(c.job, s, "ok", {"val_acc": c.search_val}) for c in cands for s in (1, 2)]
    a = analyze(cands, runs, [1, 2], KEY[cost])
    expected = pareto_front(df[df["name"].isin([c.label for c in cands])].assign(is_reference=False), KEY[cost])
    assert {r.cand.label for r in a.rows if r.on_front} == set(expected["name"])
    assert a.cost == KEY[cost]

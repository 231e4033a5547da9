"""``confirm`` end to end on a tiny real-data study: fresh seeds, statistics from the stored runs, outputs,
resume (after a clean stop and after SIGKILL), the scaling mode, and bad input."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from helpers.kill import sigkill_after_first_complete
from helpers.real_study import needs_fmnist, tiny_real

from nas_harness.cli import main as cli_main
from nas_harness.errors import ConfigError
from nas_harness.evaluation.confirm import ConfirmSettings, run_confirm
from nas_harness.evaluation.recipe import fresh_seeds, search_candidates, study_recipe
from nas_harness.results import load_study, paired_delta, study_frame, summarize

pytestmark = [needs_fmnist, pytest.mark.slow]


def _confirm_runs(folder: Path, name: str = "tiny-confirm") -> list[tuple[str, int, str]]:
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{folder / 'study.db'}")
    return [(t.user_attrs["job"], t.user_attrs["seed"], t.state.name) for t in study.trials]


def test_confirm_end_to_end(real_study: Path) -> None:
    lines: list[str] = []
    res = run_confirm(real_study, ConfirmSettings(top=2, seeds=2), progress=False, log=lines.append)
    df = study_frame(real_study)
    assert res.recipe.seed == 0 and res.analysis.seeds == [1, 2]  # fresh seeds: the search's seed is skipped
    labels = {r.cand.label for r in res.analysis.rows}
    assert {"base", "base-nose"} <= labels and len(labels) >= 3  # the references and the top of the front
    runs = _confirm_runs(real_study)
    assert len(runs) == 2 * len(res.analysis.rows) and {s for _, s, _ in runs} == {1, 2}
    assert all(state == "COMPLETE" for _, _, state in runs)
    assert any("epoch 1/1 val" in m for m in lines)
    # every number comes from the stored runs
    store = optuna.load_study(study_name="tiny-confirm", storage=f"sqlite:///{real_study / 'study.db'}")
    vals: dict[str, dict[int, float]] = {}
    for t in store.trials:
        vals.setdefault(t.user_attrs["job"], {})[t.user_attrs["seed"]] = t.user_attrs["val_acc"]
        assert t.user_attrs["val_n"] == 200 and t.user_attrs["threads"] == 1 and "test_acc" not in t.user_attrs
    base = next(r for r in res.analysis.rows if r.cand.label == "base")
    for row in res.analysis.rows:
        mine = vals[row.cand.job]
        assert row.val.mean == pytest.approx(summarize(list(mine.values())).mean)
        assert row.val.ci_low == pytest.approx(max(0.0, summarize(list(mine.values())).ci_low))  # clipped to [0, 1]
        if row is not base:
            d = paired_delta(mine, vals[base.cand.job])
            assert row.vs["base"].mean == pytest.approx(d.mean) and row.vs["base"].ci_low == pytest.approx(d.ci_low)
        assert row.cand.search_val == pytest.approx(float(df[df["arch"] == row.cand.arch]["val_acc"].iloc[0]))
    # outputs
    with (real_study / "confirm.csv").open() as f:
        table = list(csv.DictReader(f))
    assert [int(r["rank"]) for r in table] == list(range(1, len(table) + 1))
    assert [float(r["val_mean"]) for r in table] == sorted((float(r["val_mean"]) for r in table), reverse=True)
    assert table[0]["vs_best"] == "best"
    assert all(r["vs_best"] in ("tied within noise", "worse", "beats") for r in table[1:])
    with (real_study / "confirm_pairs.csv").open() as f:
        pairs = list(csv.DictReader(f))
    assert {p["reference"] for p in pairs} == {"base", "base-nose"}
    assert all(p["verdict"] in ("beats", "worse", "tied within noise") for p in pairs)
    md = (real_study / "confirm.md").read_text()
    assert "Best mean:" in md and "Selection effect:" in md and "Pareto front of the means" in md
    assert "seeds [1, 2] (the search used seed 0)" in md
    assert (real_study / "confirm.png").stat().st_size > 10_000 and (real_study / "confirm.svg").is_file()
    # the search's report keeps reading its own study although the storage now holds the confirmation too
    assert study_frame(real_study).attrs["study_name"] == "tiny"
    # re-running trains nothing; more seeds train only the new ones
    again = run_confirm(real_study, ConfirmSettings(top=2, seeds=2), progress=False, figure=False, log=lambda m: None)
    assert again.ran == [] and len(again.skipped) == len(runs)
    more = run_confirm(real_study, ConfirmSettings(top=2, seeds=3), progress=False, figure=False, log=lambda m: None)
    assert sorted({s for _, s in more.ran}) == [3] and len(more.ran) == len(res.analysis.rows)


def test_selection_never_uses_the_test_split(real_study: Path) -> None:
    df = study_frame(real_study)
    with pytest.raises(ConfigError, match="test split is never"):
        search_candidates(df, 2, "test_acc")
    # a test accuracy that contradicts validation does not change the pick
    df2 = df.copy()
    df2["test_acc"] = 1.0 - df2["val_acc"]
    picked = [c.arch for c in search_candidates(df, 3, "val_acc")]
    assert [c.arch for c in search_candidates(df2, 3, "val_acc")] == picked
    assert fresh_seeds(3, 0) == [1, 2, 3] and fresh_seeds(2, 1) == [0, 2]
    rec = study_recipe(load_study(real_study))
    assert rec.train.threads == 1 and rec.data.train_subset == 256 and rec.train.epochs == 1


def test_confirm_with_test_split_reports_it(real_study: Path) -> None:
    res = run_confirm(real_study, ConfirmSettings(top=1, seeds=1, references=False, evaluate_test=True),
                      progress=False, figure=False, log=lambda m: None)
    assert [r.cand.kind for r in res.analysis.rows] == ["search"]
    row = res.analysis.rows[0]
    assert row.test.n == 1 and 0 <= row.test.mean <= 1
    assert "test % mean" in (real_study / "confirm.md").read_text()


@pytest.mark.parametrize(("args", "store", "n_jobs"), [
    (["confirm", "results/tiny", "--top", "1", "--seeds", "2"], "tiny-confirm", 2 * 3),  # top 1 + 2 references
    (["fidelity", "results/tiny", "--top", "2", "--random", "1", "--epochs", "2", "--no-zero-cost"], "tiny-fidelity",
     3),
])
def test_sigkill_then_cli_resume(real_study: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], store: str,
                                 n_jobs: int) -> None:
    """Kill -9 the CLI once a run is stored; re-running the same command stores each run exactly once."""
    monkeypatch.chdir(real_study.parent.parent)
    args = [*args, "--no-progress", "--no-figure"]
    code = "import sys; from nas_harness.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=os.environ | {"PYTHONPATH": os.pathsep.join(sys.path)})
    db = real_study / "study.db"
    sigkill_after_first_complete(proc, db, store)
    stored = _confirm_runs(real_study, store)
    assert 1 <= len(stored) < n_jobs
    assert cli_main(args) == 0
    after = _confirm_runs(real_study, store)
    keys = [(j, s) for j, s, _ in after]
    assert len(keys) == len(set(keys)) == n_jobs  # nothing twice, nothing lost
    assert set(stored) <= set(after)  # what was stored before the kill was kept, not retrained
    assert (real_study / f"{args[0]}.md").is_file()


def test_confirm_scaling_groups(tmp_path: Path) -> None:
    from nas_harness.study.config import validate
    from nas_harness.study.scaling_search import run_scaling_search

    grid = {"alphas": [1.0, 2.0], "betas": [1.0], "gammas": [1.0, 1.42], "tolerance": 0.05}
    cfg = validate(tiny_real(tmp_path / "results", scaling=grid))
    run_scaling_search(cfg, log=lambda m: None)
    res = run_confirm(tmp_path / "results" / "tiny", ConfirmSettings(top=2, seeds=1, scaling=True), progress=False,
                      log=lambda m: None)
    assert res.study_name == "tiny-scaling" and [r.cand.kind for r in res.analysis.rows] == ["scaling"] * 2
    runs = optuna.load_study(study_name="tiny-scaling-confirm", storage=cfg.storage_url).trials
    res_by_job = {t.user_attrs["job"]: t.user_attrs for t in runs}
    assert {j.split("px:")[0] for j in res_by_job} == {"16", str(round(16 * 1.42))}  # each at its own resolution
    md = (tmp_path / "results" / "tiny" / "confirm_scaling.md").read_text()
    assert not (tmp_path / "results" / "tiny" / "confirm.md").exists()  # the search's confirmation keeps its name
    assert "Confirmation of `tiny-scaling`" in md and "a1/b1/g1.42" in md and "a2/b1/g1 " in md
    assert "Best mean:" in md


def test_cli_bad_input_exits_2_with_one_line(real_study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["confirm", str(real_study.parent / "nothing-here")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "storage:" in err
    assert cli_main(["confirm", str(real_study), "--top", "-1"]) == 2
    assert "argument --top: expected an integer in [0, 1000], got '-1'" in capsys.readouterr().err
    assert cli_main(["confirm", str(real_study), "--by", "test_acc"]) == 2
    assert "--by: invalid choice" in capsys.readouterr().err
    assert cli_main(["confirm", str(real_study), "--scaling"]) == 2
    assert "--scaling: no study 'tiny-scaling'" in capsys.readouterr().err
    assert not (real_study / "confirm.md").exists()


@pytest.mark.ray
def test_confirm_on_ray_shares_the_store(real_study: Path, ray_local: None) -> None:
    """The Ray path runs the same jobs through backends.run_jobs; a local re-run finds them stored."""
    from nas_harness.backends.settings import RayConfig

    st = ConfirmSettings(top=1, seeds=1, references=False, backend="ray", ray=RayConfig(cpus_per_trial=1))
    res = run_confirm(real_study, st, progress=False, figure=False, log=lambda m: None)
    assert len(res.ran) == 1 and res.analysis.rows[0].val.n == 1
    local = run_confirm(real_study, st.replace(backend="local"), progress=False, figure=False, log=lambda m: None)
    assert local.ran == [] and local.skipped == res.ran

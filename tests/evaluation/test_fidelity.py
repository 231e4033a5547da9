"""``fidelity`` end to end on a tiny real-data study, its [fidelity] table, and the analysis on known values."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import optuna
import pytest
from helpers.real_study import needs_fmnist
from scipy import stats as sps

from nas_harness.cli import main as cli_main
from nas_harness.errors import ConfigError
from nas_harness.evaluation.fidelity import (
    FidelityConfig,
    analyze_fidelity,
    audit,
    load_fidelity,
    markdown,
    run_fidelity,
)
from nas_harness.evaluation.recipe import Candidate, study_recipe
from nas_harness.evaluation.store import StoredRun
from nas_harness.results import load_study


def _cand(i: int, proxy: float) -> Candidate:
    return Candidate(job=f"a{i}", label=f"#{i}", kind="search", arch=f"a{i}", macs=1e6 * (i + 1), params=1e3 * (i + 1),
                     search_val=proxy, search_val_n=1000, number=i)


def test_analysis_on_known_values() -> None:
    proxy = [0.80, 0.78, 0.75, 0.70, 0.60]
    hifi = [0.88, 0.91, 0.86, 0.87, 0.80]
    cands = [_cand(i, p) for i, p in enumerate(proxy)]
    runs = [StoredRun(f"a{i}", 0, "ok", {"val_acc": h, "val_n": 5000}) for i, h in enumerate(hifi)]
    runs.append(StoredRun("a0", 7, "ok", {"val_acc": 0.1}))  # a seed outside the plan is ignored
    preds = {f"a{i}": {"params": 1e3 * (i + 1), "flat": 1.0} for i in range(5)}
    rows, s = analyze_fidelity(cands, runs, [0], top=2, predictors=preds, n_resamples=200)
    assert s["kendall_tau"] == pytest.approx(sps.kendalltau(proxy, hifi).statistic)
    assert s["spearman_rho"] == pytest.approx(sps.spearmanr(proxy, hifi).statistic)
    assert s["top_k_recall"] == 1.0  # proxy top-2 {#0, #1} = truly best two {#1, #0}, in another order
    assert s["regret"] == pytest.approx(0.91 - 0.88) and s["proxy_choice"] == "#0" and s["hifi_best"] == "#1"
    assert s["n_archs"] == 5 and len(s["kendall_tau_ci"]) == 2
    assert [r["proxy_rank"] for r in rows] == [1, 2, 3, 4, 5] and [r["hifi_rank"] for r in rows] == [2, 1, 4, 3, 5]
    assert [r["proxy_top_k"] for r in rows] == [True, True, False, False, False]
    # one run: the hi-fi interval is the Wilson interval of its split
    assert rows[0]["hifi_ci_low"] < 0.88 < rows[0]["hifi_ci_high"] and rows[0]["hifi_runs"] == 1
    p = s["predictors"]["params"]["vs_high_fidelity"]
    assert p["kendall_tau"] == pytest.approx(sps.kendalltau([1, 2, 3, 4, 5], hifi).statistic)
    assert s["predictors"]["params"]["vs_proxy"]["kendall_tau"] == pytest.approx(-1.0)
    assert s["predictors"]["flat"]["vs_high_fidelity"]["kendall_tau"] is None  # a constant score ranks nothing


def test_top_k_recall_counts_the_overlap() -> None:
    cands = [_cand(i, p) for i, p in enumerate([0.9, 0.8, 0.7, 0.6])]
    runs = [StoredRun(f"a{i}", 0, "ok", {"val_acc": h, "val_n": 100}) for i, h in enumerate([0.5, 0.9, 0.8, 0.1])]
    _, s = analyze_fidelity(cands, runs, [0], top=2, n_resamples=0)
    assert s["top_k_recall"] == 0.5 and s["kendall_tau_ci"] == [None, None]


def test_fidelity_table_validation(tmp_path: Path) -> None:
    assert FidelityConfig().factor() == 5.0
    assert FidelityConfig(data={"train_subset": 1000}).factor() == 1.0
    assert FidelityConfig(train={"epochs": 3}).factor() == 1.0
    assert FidelityConfig(epochs_factor=2, data={"val_size": 500}).factor() == 2.0
    with pytest.raises(ConfigError, match=r"^fidelity\.train\.nope: unknown key"):
        FidelityConfig.from_dict({"train": {"nope": 1}}, "fidelity")
    with pytest.raises(ConfigError, match=r"^fidelity\.train\.seed: is set per run"):
        FidelityConfig.from_dict({"train": {"seed": 1}}, "fidelity")
    with pytest.raises(ConfigError, match=r"^fidelity\.epochs_factor: 3\.0 has no effect"):
        FidelityConfig.from_dict({"train": {"epochs": 3}, "epochs_factor": 3}, "fidelity")
    with pytest.raises(ConfigError, match=r"^fidelity\.top = 0 is invalid"):
        FidelityConfig.from_dict({"top": 0}, "fidelity")
    f = tmp_path / "f.toml"
    f.write_text("[fidelity]\ntop = 3\n[fidelity.train]\nepochs = 4\n")
    assert load_fidelity(f, {"random": 2, "seeds": None}).train == {"epochs": 4} and load_fidelity(f).top == 3
    f.write_text("name = 'x'\n[fidelity]\ntop = 3\n")
    with pytest.raises(ConfigError, match=r"^name: unknown key; a fidelity file holds one"):
        load_fidelity(f)



def test_report_tables_come_from_the_document_model() -> None:
    """fidelity.md's tables are rendered by report.document: every row has its header's cells, and a label with
    a '|' is escaped instead of adding a column."""
    cands = [_cand(i, p) for i, p in enumerate([0.8, 0.7, 0.6, 0.5])]
    cands[0] = Candidate(**{**vars(cands[0]), "label": "odd|label"})
    runs = [StoredRun(f"a{i}", 0, "ok", {"val_acc": h, "val_n": 100}) for i, h in enumerate([0.6, 0.9, 0.8, 0.1])]
    rows, s = analyze_fidelity(cands, runs, [0], top=2, predictors={f"a{i}": {"macs": i} for i in range(4)},
                               n_resamples=100)
    s.update(audit=audit(rows, 2, 100), seeds=[0], hifi_train_s=60.0, zero_cost_s=1.0, bootstrap_resamples=100)
    recipe = SimpleNamespace(describe=lambda: "a recipe", budget=lambda: "1 epoch(s)")
    res = SimpleNamespace(study_name="s", proxy=recipe, hifi=recipe, config=SimpleNamespace(seed=0), archs=rows,
                          summary=s, failed=[StoredRun("a3", 1, "fail", {}, error="boom")])
    md = markdown(res)
    tables = [block.splitlines() for block in md.split("\n\n") if block.startswith("| ")]
    assert len(tables) == 4  # measures, predictors, audit, archs
    for table in tables:
        assert table[1] == "|" + "|".join(["---"] * (len(table[1]) // 4)) + "|"
        widths = {len(re.findall(r"(?<!\\)\|", line)) for line in table}
        assert len(widths) == 1, table
    assert "| odd\\|label (top) |" in md and "\n- a3 seed 1: boom\n" in md


def test_a_proxy_that_ranks_exactly_as_macs_is_not_called_tied_within_noise() -> None:
    """The proxy orders the archs as their MACs do: tau(proxy) - tau(MACs) is 0 in every bootstrap resample, a
    zero-width interval; the audit says the two rank alike instead of "cannot be told apart (within noise)"."""
    cands = [_cand(i, 0.5 + 0.01 * i) for i in range(8)]  # MACs and proxy both increase with i
    hifi = [0.6, 0.9, 0.8, 0.1, 0.7, 0.65, 0.95, 0.3]
    runs = [StoredRun(f"a{i}", 0, "ok", {"val_acc": h, "val_n": 100}) for i, h in enumerate(hifi)]
    rows, s = analyze_fidelity(cands, runs, [0], top=2, n_resamples=200)
    a = audit(rows, 2, 200)
    assert a["tau_minus_macs"] == 0 and a["tau_minus_macs_ci"] == [0, 0] and a["verdict_vs_macs"] == "tied within noise"
    s.update(audit=a, seeds=[0], hifi_train_s=60.0, zero_cost_s=1.0, bootstrap_resamples=200)
    recipe = SimpleNamespace(describe=lambda: "a recipe", budget=lambda: "1 epoch(s)")
    md = markdown(SimpleNamespace(study_name="s", proxy=recipe, hifi=recipe, config=SimpleNamespace(seed=0),
                                  archs=rows, summary=s, failed=[]))
    assert ("the proxy and MACs alone rank the archs alike: identical in every bootstrap resample of the 8 archs "
            "(difference 0)") in md
    assert "within noise" not in md.split("**Verdict:**")[1].splitlines()[0]
    assert "percentile-bootstrap 95% interval over archs" in md

    # too few archs to resample: the difference is given without a verdict (it read "cannot be told apart")
    rows4, s4 = analyze_fidelity(cands[:4], runs[:4], [0], top=2, n_resamples=200)
    a4 = audit(rows4, 2, 200)
    assert None in a4["tau_minus_macs_ci"]
    s4.update(audit=a4, seeds=[0], hifi_train_s=60.0, zero_cost_s=1.0, bootstrap_resamples=200)
    md4 = markdown(SimpleNamespace(study_name="s", proxy=recipe, hifi=recipe, config=SimpleNamespace(seed=0),
                                   archs=rows4, summary=s4, failed=[]))
    line = md4.split("**Verdict:**")[1].splitlines()[0]
    assert line.startswith(" none: tau(the proxy) - tau(MACs) = ") and "too few for a bootstrap interval" in line


@needs_fmnist
@pytest.mark.slow
def test_fidelity_end_to_end(real_study: Path) -> None:
    cfg = FidelityConfig(top=2, random=2, train={"epochs": 2}, bootstrap=300)
    proxy = study_recipe(load_study(real_study))
    with pytest.raises(ConfigError, match="equals the search's"):
        FidelityConfig(epochs_factor=1).high_fidelity(proxy)
    with pytest.raises(ConfigError, match=r"^fidelity\.data\.resolution = 2 is invalid"):
        FidelityConfig(data={"resolution": 2}).high_fidelity(proxy)
    res = run_fidelity(real_study, cfg, progress=False, log=lambda m: None)
    assert res.hifi.train.epochs == 2 and res.hifi.data == proxy.data
    out = json.loads((real_study / "fidelity.json").read_text())
    for key in ("kendall_tau", "kendall_tau_ci", "spearman_rho", "top_k_recall", "n_archs", "regret", "predictors"):
        assert key in out
    assert out["n_archs"] == 4 and len(res.archs) == 4
    assert sum(a["proxy_top_k"] for a in out["archs"]) == 2
    # the statistics are those of the stored high-fidelity runs against the search's validation accuracies
    store = optuna.load_study(study_name="tiny-fidelity", storage=f"sqlite:///{real_study / 'study.db'}")
    hifi = {t.user_attrs["job"]: t.user_attrs["val_acc"] for t in store.trials}
    assert len(hifi) == 4 and all(t.user_attrs["epochs"] == 2 for t in store.trials)
    proxy_acc = [a["proxy_val_acc"] for a in out["archs"]]
    truth = [hifi[a["arch"]] for a in out["archs"]]
    tau = sps.kendalltau(proxy_acc, truth).statistic
    assert (out["kendall_tau"] is None and math.isnan(tau)) or out["kendall_tau"] == pytest.approx(tau)
    assert set(out["predictors"]) == {"params", "macs", "synflow", "naswot", "grad_norm"}
    md = (real_study / "fidelity.md").read_text()
    assert "Kendall tau (proxy vs high fidelity)" in md and "| synflow |" in md and "trained proxy (1 epoch(s))" in md
    assert (real_study / "fidelity.png").stat().st_size > 10_000
    # resume: nothing retrained; another recipe under the same name is refused; under another name it is kept apart
    again = run_fidelity(real_study, cfg, progress=False, figure=False, log=lambda m: None)
    assert again.ran == [] and len(again.skipped) == 4
    with pytest.raises(ConfigError, match="different recipe"):
        run_fidelity(real_study, cfg.replace(train={"epochs": 3}), progress=False, log=lambda m: None)
    assert cli_main(["fidelity", str(real_study), "--top", "1", "--random", "1", "--epochs", "2", "--no-progress",
                     "--no-zero-cost", "--no-figure", "--report-only"]) == 0


@needs_fmnist
def test_fidelity_cli_bad_input(real_study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["fidelity", str(real_study), "--epochs", "2", "--factor", "3"]) == 2
    assert "--factor has no effect with --epochs" in capsys.readouterr().err
    assert cli_main(["fidelity", str(real_study), "--config", str(real_study / "missing.toml")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "fidelity file" in err and "no such file" in err
    assert cli_main(["fidelity", str(real_study), "--val-size", "70000"]) == 2
    assert "validation images requested" in capsys.readouterr().err
    # --report-only with no runs stored: one line, and no empty fidelity study is created to report on
    assert cli_main(["fidelity", str(real_study), "--name", "never", "--epochs", "3", "--report-only",
                     "--no-figure", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds no fidelity runs" in err and "without --report-only" in err, err
    import optuna

    assert not any(n.endswith("-never") for n in optuna.get_all_study_names(f"sqlite:///{real_study / 'study.db'}"))
    assert not (real_study / "fidelity.json").exists()


def test_stratified_selection_draws_one_arch_from_each_macs_bin() -> None:
    import pandas as pd

    from nas_harness.evaluation.fidelity import FidelityConfig, select_archs

    n = 30
    macs = [(7 * i) % n + 1 for i in range(n)]  # a permutation of 1..30, unrelated to the accuracy order
    df = pd.DataFrame({"state": "COMPLETE", "full_budget": True, "feasible": True, "is_reference": False,
                       "arch": [f"a{i}" for i in range(n)], "name": [f"#{i}" for i in range(n)],
                       "val_acc": [1.0 - i / 100 for i in range(n)], "val_n": 100, "macs": macs,
                       "params": macs, "number": list(range(n))})
    for seed in range(5):
        cands = select_archs(df, FidelityConfig(top=3, random=3, seed=seed, zero_cost=False), stratified=True)
        assert [c.arch for c in cands[:3]] == ["a0", "a1", "a2"]  # the proxy's top 3
        rest = sorted(m for i, m in enumerate(macs) if i >= 3)
        bins = [rest[:9], rest[9:18], rest[18:]]  # the rest's 27 archs in three equal-count MACs bins
        assert sorted(next(j for j, b in enumerate(bins) if c.macs in b) for c in cands[3:]) == [0, 1, 2]


@needs_fmnist
def test_a_cheaper_high_fidelity_recipe_is_refused_or_named(real_study: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """The search trained 1 epoch on 256 images at 16 px (4 steps of 64): a "high fidelity" larger in nothing
    is refused, one cheaper in some respect is named in a warning, one of the same cost is called a recipe
    comparison; a supernet/table study's own evaluator is judged by the same rules where they apply."""
    from nas_harness.evaluation.fidelity import check_fidelity

    proxy = study_recipe(load_study(real_study))
    assert proxy.planned() == {"images": 256, "steps": 4, "seen": 256, "resolution": 16}

    def hifi(**kw: Any) -> Any:
        return FidelityConfig(**kw).high_fidelity(proxy, "supernet")  # "supernet": equality is not refused here

    assert check_fidelity(proxy, hifi(train={"epochs": 2})) is None
    assert check_fidelity(proxy, hifi(data={"resolution": 32}, epochs_factor=1)) is None
    with pytest.raises(ConfigError, match=r"^fidelity: the high-fidelity recipe is cheaper than the search's "
                                          r"\(optimiser steps 2 < 4, images seen \(steps x batch\) 128 < 256\) and "
                                          r"larger in nothing"):
        check_fidelity(proxy, hifi(train={"epochs": 0.5}))
    with pytest.raises(ConfigError, match=r"training images 128 < 256"):
        check_fidelity(proxy, hifi(data={"train_subset": 128}, epochs_factor=1))
    assert check_fidelity(proxy, hifi(train={"epochs": 0.5}), refuse=False).startswith("warning: fidelity: the high")
    mixed = check_fidelity(proxy, hifi(train={"epochs": 2}, data={"resolution": 8}))
    assert mixed == ("warning: fidelity: the high-fidelity recipe is cheaper than the search's in resolution (px) "
                     "8 < 16: its verdicts mix a higher and a lower fidelity")
    same = check_fidelity(proxy, hifi(train={"epochs": 1, "lr": 0.02}))
    assert "same resolution as the search's (only train.lr changed)" in same and "not two fidelities" in same
    # a supernet study judged by training from scratch: less than the study's recipe is a warning, never refused
    weaker = check_fidelity(proxy, hifi(train={"epochs": 0.5}), "supernet")
    assert weaker.startswith("warning: fidelity: the from-scratch recipe trains less than the study's own recipe")
    assert check_fidelity(proxy, hifi(train={"epochs": 1}), "supernet") is None
    # the high side the study's own evaluator with the same settings: the same numbers on both sides
    table = FidelityConfig(against="table").high_fidelity(proxy)
    with pytest.raises(ConfigError, match=r"--against table is the study's own evaluator with the same settings"):
        check_fidelity(proxy, table, "table", {"kind": "table", "options": {}})
    assert check_fidelity(proxy, table, "surrogate", {"kind": "surrogate", "options": {}}) is None
    assert check_fidelity(proxy, table, "train") is None
    # through the CLI: one line, exit 2, nothing run or written
    assert cli_main(["fidelity", str(real_study), "--epochs", "0.5", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cheaper than the search's" in err
    assert not (real_study / "fidelity.json").exists()
    assert [s.study_name for s in optuna.get_all_study_summaries(f"sqlite:///{real_study / 'study.db'}")] == ["tiny"]

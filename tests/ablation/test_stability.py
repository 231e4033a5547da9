"""Two budgets: does the ranking of the variants agree? (known tables, config, and the CLI end to end)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
from helpers.studies import tiny_ablation

from nas_harness.ablation import parse_ablation
from nas_harness.ablation.stats import budget_stability, variant_table
from nas_harness.cli import main as cli_main
from nas_harness.errors import ConfigError


def _runs(acc: dict[str, list[float]]) -> list[dict]:
    return [{"variant": v, "seed": s, "state": "ok", "test_acc": a, "val_acc": a, "params": 1, "macs": 1,
             "train_time_s": 1.0} for v, accs in acc.items() for s, a in enumerate(accs)]


def _table(acc: dict[str, list[float]]):
    return variant_table(_runs(acc), list(acc), {v: v for v in acc})


def test_same_order_and_verdicts_is_stable() -> None:
    a = _table({"baseline": [0.60, 0.62, 0.61], "no_se": [0.70, 0.71, 0.70], "no_skip": [0.30, 0.32, 0.31]})
    b = _table({"baseline": [0.80, 0.81, 0.80], "no_se": [0.85, 0.86, 0.85], "no_skip": [0.50, 0.52, 0.50]})
    st = budget_stability(a, b)
    assert st.same_order and st.same_best and st.flipped == [] and st.agreed
    assert st.tau == pytest.approx(1.0)
    assert [r["verdict_a"] for r in st.rows] == ["baseline", "beats", "worse"]


def test_flipped_conclusion_is_reported() -> None:
    # the worry: "SE costs B0 8.4 points" at one budget, the opposite at a longer one
    a = _table({"baseline": [0.61, 0.57, 0.65], "no_se": [0.70, 0.69, 0.70], "no_skip": [0.30, 0.33, 0.32]})
    b = _table({"baseline": [0.83, 0.84, 0.83], "no_se": [0.80, 0.81, 0.80], "no_skip": [0.60, 0.62, 0.61]})
    st = budget_stability(a, b)
    assert not st.same_order and not st.same_best and not st.agreed
    assert st.flipped == ["no_se"]  # tied within noise at A (n = 3, wide interval), worse at B
    assert st.rows[1]["verdict_a"] == "tied within noise" and st.rows[1]["verdict_b"] == "worse"
    assert st.tau == pytest.approx(1 / 3)


def test_missing_variants_and_config() -> None:
    a = _table({"baseline": [0.6], "no_se": [0.7]})
    b = _table({"baseline": [0.8]})
    st = budget_stability(a, b)
    assert len(st.rows) == 1 and math.isnan(st.tau)
    d = {"name": "t", "variants": ["baseline", "no_se"], "data": {"dataset": "synthetic", "resolution": 16},
         "train": {"steps": 2, "batch_size": 8}}
    assert parse_ablation(d).second_budget() is None
    cfg = parse_ablation({**d, "compare_budget": {"epochs": 2, "train_subset": 100}})
    two = cfg.second_budget()
    assert two is not None and two.train.epochs == 2 and two.train.steps is None and two.data.train_subset == 100
    assert two.name == "t-budget2" and two.storage_url == cfg.storage_url and two.recipe() != cfg.recipe()
    with pytest.raises(ConfigError, match=r"^compare_budget\.resolution = 2 is invalid"):
        parse_ablation({**d, "compare_budget": {"resolution": 2}})
    with pytest.raises(ConfigError, match=r"^compare_budget: give at least one"):
        parse_ablation({**d, "compare_budget": {}})


TOML = tiny_ablation(extra="[compare_budget]\nsteps = 6\n")


@pytest.mark.slow
def test_cli_runs_both_budgets_and_reports_stability(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    Path("tiny.toml").write_text(TOML)
    assert cli_main(["ablate", "tiny.toml", "--no-progress", "--no-figure"]) == 0
    out = capsys.readouterr().out
    assert "second budget (6 steps, all images at 16 px): ran 4 run(s)" in out
    md = Path("results/tiny/summary.md").read_text()
    assert "### Stable across budgets? A = 3 steps, all images at 16 px, B = 6 steps, all images at 16 px" in md
    assert "Kendall tau of the variant means between the budgets" in md
    assert ("Stable:" in md) != ("Not stable:" in md)
    with open("results/tiny/stability.csv") as f:
        assert [r["variant"] for r in csv.DictReader(f)] == ["baseline", "no_se"]
    # re-running trains nothing at either budget; --report-only redraws from the stored runs
    assert cli_main(["ablate", "tiny.toml", "--no-progress", "--no-figure"]) == 0
    assert "second budget (6 steps, all images at 16 px): ran 0 run(s)" in capsys.readouterr().out
    assert cli_main(["ablate", "tiny.toml", "--report-only", "--no-figure"]) == 0
    assert "Stable across budgets?" in capsys.readouterr().out

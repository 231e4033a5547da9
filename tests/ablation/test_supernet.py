"""Ablations in the supernet: a tiny real-data ablation scored with inherited weights next to its from-scratch
runs (locally and on Ray), the agree/disagree logic on constructed results, and bad [supernet] keys."""

from __future__ import annotations

import csv
import math
import tomllib
from pathlib import Path

import pytest
from helpers.studies import tiny_ablation

from nas_harness.ablation import parse_ablation
from nas_harness.ablation.report import summarize_runs, write_report
from nas_harness.ablation.runner import RunRecord, run_ablation
from nas_harness.ablation.supernet import agreement, load_supernet_records, supernet_rows
from nas_harness.errors import ConfigError

REAL = {"dataset": "fashion_mnist", "train_subset": 300, "val_size": 100, "resolution": 16, "channels": 1}


def _raw(**over: object) -> dict:
    d = tomllib.loads(tiny_ablation(seeds=2))
    d.update(variants=["baseline", "no_se", "no_skip", "relu"], data=REAL,
             supernet={"epochs": 1, "bn_batches": 2, "bn_batch_size": 32})
    d.update(over)
    return d


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_space_holds_the_base_and_the_variants_a_supernet_can_hold() -> None:
    cfg = parse_ablation(_raw(variants=["baseline", "no_se", "no_skip", "relu", "no_drop_path", "k5"],
                              variant={"k5": {"overrides": [{"stage": 2, "override": "k5_e4"}]}}))
    space, sample_skip, missing = cfg.supernet_plan
    assert sample_skip  # no_skip drops the base's skips: the sampler draws them
    assert space.stages[1].kernels == (3, 5) and space.stages[1].expands == (3.0, 4.0)
    assert all(sc.se == (True, False) for sc in space.stages) and space.stages[0].kernels == (3,)
    assert set(missing) == {"relu"} and "act is 'relu'" in missing["relu"]  # no_drop_path: the base has dp0
    given = parse_ablation(_raw(supernet={"space": {"kernels": [3, 5], "expands": [1, 3], "se": [True, False]},
                                          "sample_skip": False}))
    _, skip, missing = given.supernet_plan
    assert not skip and "sample_skip = true" in missing["no_skip"] and set(missing) == {"no_skip", "relu"}


@pytest.mark.parametrize(("table", "message"), [
    ({"sampling": "greedy"}, r"^supernet\.sampling = 'greedy' is invalid"),
    ({"sample_skip": "yes"}, r"^supernet\.sample_skip = 'yes' is invalid"),
    ({"bn_batches": 0}, r"^supernet\.bn_batches = 0 is invalid"),
    ({"nope": 1}, r"^supernet\.nope: unknown key"),
    ({"space": {"kernels": [4]}}, r"^supernet\.space\.kernels: .*odd kernel sizes"),
    ({"space": {"colour": 1}}, r"^supernet\.space\.colour: unknown key"),
    ({"space": {"kernels": [5, 7]}}, r"^supernet\.space: does not contain the base arch: stage 1 kernel 3"),
])
def test_bad_supernet_keys_are_one_line(table: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        parse_ablation(_raw(supernet=table))
    assert "\n" not in str(err.value)


def _run(v: str, seed: int, **metrics: float) -> RunRecord:
    return RunRecord(v, seed, "ok", {"variant": v, "seed": seed, "arch": "x", **metrics})


def test_verdicts_agree_or_disagree_on_constructed_results() -> None:
    """From-scratch: no_se worse, no_skip beats, se_stages tied.  Supernet: no_se worse (agree), no_skip tied
    (disagree: its seeds differ by +1 point but 200 validation images cannot tell), se_stages worse by 30 points
    on every seed (disagree), relu not in the supernet (undecided)."""
    cfg = parse_ablation(_raw(variants=["baseline", "no_se", "no_skip", "se_stages", "relu"], seeds=3))
    scratch = []
    for s, noise in enumerate((0.0, 0.004, -0.003)):
        scratch += [_run("baseline", s, test_acc=0.80 + noise, val_acc=0.8), _run("no_se", s, test_acc=0.70 + noise),
                    _run("no_skip", s, test_acc=0.85 + noise), _run("se_stages", s, test_acc=0.80 + 2 * noise),
                    _run("relu", s, test_acc=0.78 + noise)]
    rows = summarize_runs(cfg, scratch)
    verdicts = {r.variant: r.delta_test.verdict for r in rows if r.variant != "baseline"}
    assert verdicts == {"no_se": "worse", "no_skip": "beats", "se_stages": "tied within noise", "relu": "worse"}
    scores = []
    for s, noise in enumerate((0.0, 0.005, -0.005)):
        scores += [_run("baseline", s, val_acc=0.60 + noise, val_n=200), _run("no_se", s, val_acc=0.20 + noise,
                                                                                   val_n=200),
                   _run("no_skip", s, val_acc=0.61 + noise, val_n=200), _run("se_stages", s, val_acc=0.30 + noise,
                                                                               val_n=200)]
    by = {r.variant: r for r in supernet_rows(cfg, scores, rows)}
    assert by["baseline"].agreement == "undecided" and by["baseline"].verdict is None
    assert (by["no_se"].verdict, by["no_se"].agreement) == ("worse", "agree")
    # the paired t over seeds alone says "beats" (identical +1 point on each seed); the 200 images do not
    assert by["no_skip"].delta == pytest.approx(0.01) and by["no_skip"].delta_low < 0 < by["no_skip"].delta_high
    assert (by["no_skip"].verdict, by["no_skip"].agreement) == ("tied within noise", "disagree")
    assert (by["se_stages"].verdict, by["se_stages"].agreement) == ("worse", "disagree")
    assert by["relu"].not_in is not None and by["relu"].agreement == "undecided" and by["relu"].n == 0
    lo, hi = by["baseline"].val_low, by["baseline"].val_high
    assert lo < 0.60 < hi and by["baseline"].n == 3 and by["baseline"].val_n == 200  # Wilson over 200 images
    assert agreement(None, "worse") == agreement("beats", None) == "undecided"
    from nas_harness.ablation.supernet import supernet_blocks
    from nas_harness.report.document import to_markdown

    failed = RunRecord("no_se", 3, "failed", {"variant": "no_se", "seed": 3}, "TrialError: boom")
    md = to_markdown(supernet_blocks(cfg, list(by.values()), [*scores, failed]))
    assert "| no_skip | 61.00 [" in md and "| tied within noise | beats | disagree |" in md
    assert "| relu | not in the supernet: act is 'relu'" in md and "| worse | undecided |" in md
    assert "The verdicts agree for 1 of 3 variants decided both ways; they disagree for no_skip, se_stages." in md
    assert "Failed supernet scores:\n\n- no_se seed 3: TrialError: boom" in md
    one_seed = summarize_runs(cfg, [r for r in scratch if r.seed == 0])  # one from-scratch seed: undecided
    assert {r.agreement for r in supernet_rows(cfg, scores, one_seed)} == {"undecided"}


@pytest.mark.slow
def test_a_tiny_real_ablation_is_scored_in_the_supernet(in_tmp: Path) -> None:
    cfg = parse_ablation(_raw())
    lines: list[str] = []

    def stop_after_first_score(msg: str) -> None:  # an interruption right after the first score is stored
        lines.append(msg)
        if msg.startswith("supernet baseline seed 0: val"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_ablation(cfg, progress=False, log=stop_after_first_score)
    assert len(load_supernet_records(cfg)) == 1  # what was stored before the interruption is kept
    res = run_ablation(cfg, progress=False, log=lines.append)
    assert any(m.startswith("supernet scores: 3 variants x 2 seeds = 6; 1 already stored, 5 to score") for m in lines)
    assert [r.state for r in res.records] == ["ok"] * 8
    assert sorted((r.variant, r.seed) for r in res.supernet) == [(v, s) for v in ("baseline", "no_se", "no_skip")
                                                                 for s in (0, 1)]
    assert any("'relu' is not in the supernet (act is 'relu'" in m for m in lines)
    ids = set()
    for r in res.supernet:
        m = r.metrics
        assert r.state == "ok" and m["evaluator"] == "supernet" and m["bn_seed"] == r.seed and m["val_n"] == 100
        assert m["supernet_epochs"] == 1.0 and m["bn_batches"] == 2 and m["bn_batch_size"] == 32
        assert m["sample_skip"] is True and "inherited-weight" in m["accuracy_note"] and 0 <= m["val_acc"] <= 1
        assert m["arch"] == str(cfg.archs[r.variant])
        ids.add((m["supernet_id"], m["supernet_weights"], m["evaluator_id"]))
    assert len(ids) == 1  # one supernet, trained once
    by = {(r.variant, r.seed): r.metrics["val_acc"] for r in res.supernet}
    assert by[("baseline", 0)] != by[("baseline", 1)] or by[("no_se", 0)] != by[("no_se", 1)]  # recalibration seeds

    ck = next(Path("results/tiny/supernet").glob("supernet-*.pt"))
    stamp = ck.stat().st_mtime_ns
    again = run_ablation(cfg, progress=False, log=lines.append)  # resumed: nothing trained or scored again
    assert ck.stat().st_mtime_ns == stamp and not again.ran
    assert lines[-1].startswith("supernet scores: 3 variants x 2 seeds = 6; 6 already stored, 0 to score")
    assert [(r.variant, r.seed, r.metrics["val_acc"]) for r in again.supernet] == \
           [(r.variant, r.seed, r.metrics["val_acc"]) for r in res.supernet]
    assert len(load_supernet_records(cfg)) == 6

    paths, text = write_report(cfg, res.records, figure=False, supernet=res.supernet)
    assert "### Scored in the supernet (inherited weights)" in text and "not in the supernet: act is 'relu'" in text
    assert f"supernet `{ids.pop()[0]}`" in text and "The verdicts agree for" in text
    html = paths.markdown.with_suffix(".html").read_text()
    assert "Scored in the supernet (inherited weights)" in html and "<td class='r'>" in html
    rows = list(csv.DictReader((in_tmp / "results/tiny/supernet.csv").open()))
    assert [r["variant"] for r in rows] == ["baseline", "no_se", "no_skip", "relu"]
    assert rows[3]["agreement"] == "undecided" and rows[3]["not_in"].startswith("act is")
    assert all(math.isfinite(float(r["val_acc"])) for r in rows[:3])


@pytest.mark.ray
@pytest.mark.slow
def test_a_tiny_ablation_scored_in_the_supernet_on_ray(in_tmp: Path, ray_local: None) -> None:
    d = _raw(variants=["baseline", "no_se"], seeds=1, ray={"cpus_per_trial": 1.0, "max_concurrent": 2})
    d["run"] = {**d["run"], "backend": "ray"}
    lines: list[str] = []
    res = run_ablation(parse_ablation(d), progress=False, log=lines.append)
    assert any("(ray backend" in m for m in lines)
    assert [r.state for r in res.supernet] == ["ok", "ok"] and [r.state for r in res.records] == ["ok", "ok"]
    assert {r.metrics["supernet_id"] for r in res.supernet} == {res.supernet[0].metrics["supernet_id"]}

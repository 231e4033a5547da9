"""Scaling curves run durably: one stored run per (network, seed), seeds paired across all variants, a re-run
trains nothing stored, a SIGKILL loses nothing stored, and the report is written from the stored runs."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from helpers.kill import sigkill_after_first_complete
from helpers.studies import tiny_curves

from nas_harness.cli import main as cli_main
from nas_harness.scaling_curves import (
    CurvesStore,
    load_records,
    network_macs,
    parse_scaling_curves,
    plan_jobs,
    run_curves,
    variant_spec,
    write_report,
)

TOML = tiny_curves()


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _complete(db: Path) -> list[tuple[str, int]]:
    from optuna.trial import TrialState

    store = CurvesStore(f"sqlite:///{db}", "tiny")
    return [(t.user_attrs["network"], t.user_attrs["seed"]) for t in store.study.get_trials(deepcopy=False)
            if t.state == TrialState.COMPLETE]


def test_seeds_are_paired_across_every_variant() -> None:
    """Seed s trains every network with the same training seed and the same data subset/split; only the
    resolution of the images differs between variants."""
    cfg = parse_scaling_curves(tomllib.loads(TOML))
    train = cfg.train
    for s in cfg.seeds:
        specs = [variant_spec(cfg, p, s, train, 10) for p in cfg.networks().values()]
        assert {(sp.seed, sp.train.seed) for sp in specs} == {(s, s)}
        datas = {sp.data.replace(resolution=16).to_dict().__repr__() for sp in specs}
        assert len(datas) == 1  # same data set, subset, split seed, fit
        assert {sp.data.resolution for sp in specs} == {16, 18, 24}  # phi=1: round(16 x 1.15)
    plan = plan_jobs(cfg)
    assert len(plan) == len(set(plan)) == len(cfg.networks()) * len(cfg.seeds)
    assert {k for k, _ in plan} == set(cfg.networks())


def test_run_stores_every_pair_once_with_both_macs_and_reruns_nothing(in_tmp: Path) -> None:
    cfg = parse_scaling_curves(tomllib.loads(TOML))
    res = run_curves(cfg, progress=False, log=lambda m: None)
    assert sorted(res.ran) == sorted(plan_jobs(cfg)) and not res.failed
    nets = cfg.networks()
    by_net: dict[str, set[int]] = {}
    for r in res.records:
        by_net.setdefault(r.group, set()).add(r.seed)
        macs = network_macs(cfg, nets[r.group], 10)
        assert r.metrics["macs"] == macs["deployed"] and r.metrics["proxy_macs"] == macs["proxy"]
        assert r.metrics["resolution"] == nets[r.group].resolution and r.metrics["seed"] == r.seed
        assert r.metrics["arch"] == str(nets[r.group].arch)
    assert by_net == {k: {0, 1} for k in nets}  # every network has every seed: the pairing is complete
    again = run_curves(cfg, progress=False, log=lambda m: None)
    assert again.ran == [] and sorted(again.skipped) == sorted(plan_jobs(cfg))
    paths, text = write_report(cfg, load_records(cfg), 10)
    names = {p.name for p in paths}
    assert {"report.md", "report.html", "points.csv", "gains.csv", "matched.csv", "runs.csv",
            "fig3_single.png", "fig4_width_panel.png", "fig8_compound.png"} <= names
    assert "same network as w=1" in text and "Where each curve stops gaining" in text
    assert "loaded by the data set's loader" in text  # how the images reach each resolution


def test_sigkill_then_cli_resume_reruns_nothing_stored(in_tmp: Path) -> None:
    """Kill -9 the CLI once a run is stored; re-running the same command trains only what is missing."""
    toml = tiny_curves(curves="width = [1.0, 2.0]\ncompound_phi = [0, 1]").replace("steps = 3", "steps = 12")
    Path("tiny.toml").write_text(toml)
    code = "import sys; from nas_harness.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen([sys.executable, "-c", code, "scaling-curves", "tiny.toml", "--no-progress",
                             "--no-figure"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=os.environ | {"PYTHONPATH": os.pathsep.join(sys.path)})
    db = Path("results/tiny/curves.db")
    sigkill_after_first_complete(proc, db, timeout_s=120)
    stored = _complete(db)
    cfg = parse_scaling_curves(tomllib.loads(toml))
    assert 1 <= len(stored) < len(plan_jobs(cfg)) == 3 * 2
    assert cli_main(["scaling-curves", "tiny.toml", "--no-progress", "--no-figure"]) == 0
    after = _complete(db)
    assert sorted(after) == sorted(plan_jobs(cfg))  # each pair exactly once: nothing stored ran again
    assert set(stored) <= set(after)
    assert Path("results/tiny/report.md").is_file()


def test_check_lists_every_variant_and_trains_nothing(in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Path("tiny.toml").write_text(TOML)
    assert cli_main(["scaling-curves", "tiny.toml", "--check"]) == 0
    out = capsys.readouterr().out
    assert "7 distinct networks x 2 seeds" in out and "phi=1" in out and "deployed" in out
    assert not Path("results").exists()


@pytest.mark.ray
@pytest.mark.slow
def test_ray_backend_runs_the_same_jobs_into_the_same_store(in_tmp: Path, ray_local: None) -> None:
    d = tomllib.loads(TOML)
    d.update(seeds=[0], run={"backend": "ray"}, ray={"cpus_per_trial": 1})
    d["curves"] = {"width": [1.0, 2.0]}
    cfg = parse_scaling_curves(d)
    res = run_curves(cfg, progress=False, log=lambda m: None)
    assert sorted(res.ran) == sorted(plan_jobs(cfg)) and all(r.state == "ok" for r in res.records)

"""A tiny ablation end to end (real trial code, synthetic data), failures, resume after interruption/SIGKILL."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.kill import sigkill_after_first_complete
from helpers.studies import tiny_ablation

from nas_harness.ablation import parse_ablation
from nas_harness.ablation.report import write_report
from nas_harness.ablation.runner import AblationStore, run_ablation
from nas_harness.cli import main as cli_main
from nas_harness.errors import ConfigError, NonFiniteLossError

TOML = tiny_ablation()


def _raw(**over: object) -> dict:
    import tomllib

    d = tomllib.loads(TOML)
    d.update(over)
    return d


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _complete_trials(db: Path) -> list[tuple[str, int]]:
    from optuna.trial import TrialState

    store = AblationStore(f"sqlite:///{db}", "tiny")
    out = []
    for t in store.study.get_trials(deepcopy=False):
        if t.state == TrialState.COMPLETE:
            out.append((t.user_attrs["variant"], t.user_attrs["seed"]))
    return out


@pytest.mark.slow
def test_tiny_ablation_end_to_end(in_tmp: Path) -> None:
    cfg = parse_ablation(_raw())
    lines: list[str] = []
    res = run_ablation(cfg, progress=False, log=lines.append)
    assert sorted(res.ran) == [("baseline", 0), ("baseline", 1), ("no_se", 0), ("no_se", 1)]
    assert sum("baseline/seed0: epoch 1 val" in m for m in lines) == 1  # epoch-level progress
    assert not list(Path("results/tiny/checkpoints").glob("*.pt"))  # mid-run checkpoints are cleaned up
    assert [r.state for r in res.records] == ["ok"] * 4
    by = {(r.variant, r.seed): r.metrics for r in res.records}
    for (v, s), m in by.items():
        assert 0.0 <= m["test_acc"] <= 1.0 and 0.0 <= m["val_acc"] <= 1.0
        assert m["seed"] == s and m["arch"] == str(cfg.archs[v])
        assert m["train_time_s"] > 0 and "torch" in m["versions"]
    # removing SE removes parameters and MACs, and that is what was recorded
    assert by[("no_se", 0)]["params"] < by[("baseline", 0)]["params"]
    assert by[("no_se", 0)]["macs"] < by[("baseline", 0)]["macs"]
    # the same seed gives the same run: re-running a pair in a fresh store reproduces its accuracy exactly
    again = run_ablation(parse_ablation(_raw(name="tiny2", variants=["baseline"], seeds=[1])), progress=False,
                         log=lambda m: None)
    assert again.records[0].record.test_acc == by[("baseline", 1)]["test_acc"]
    assert again.records[0].record.val_acc == by[("baseline", 1)]["val_acc"]

    paths, text = write_report(cfg, res.records)
    assert paths.markdown.read_text() == text
    assert "| baseline | 2 |" in text and "| no_se | 2 |" in text
    with paths.summary_csv.open() as f:
        rows = {r["variant"]: r for r in csv.DictReader(f)}
    mean = (by[("no_se", 0)]["test_acc"] + by[("no_se", 1)]["test_acc"]) / 2
    assert float(rows["no_se"]["test_acc_mean"]) == pytest.approx(mean)
    d = (by[("no_se", 0)]["test_acc"] - by[("baseline", 0)]["test_acc"]
         + by[("no_se", 1)]["test_acc"] - by[("baseline", 1)]["test_acc"]) / 2
    assert float(rows["no_se"]["delta_test_mean"]) == pytest.approx(d)
    assert int(rows["no_se"]["d_params"]) < 0
    with paths.runs_csv.open() as f:
        assert len(list(csv.DictReader(f))) == 4
    assert {p.suffix for p in paths.figures} == {".png", ".svg"}
    assert all(p.stat().st_size > 1000 for p in paths.figures)
    assert paths.markdown.parent == Path("results") / "tiny"


@pytest.mark.slow
def test_interrupted_ablation_resumes_without_rerunning(in_tmp: Path) -> None:
    cfg = parse_ablation(_raw())

    def stop_after_first(rec: object) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_ablation(cfg, progress=False, on_record=stop_after_first, log=lambda m: None)
    db = Path(cfg.storage_url.removeprefix("sqlite:///"))
    assert _complete_trials(db) == [("baseline", 0)]
    res = run_ablation(cfg, progress=False, log=lambda m: None)
    assert res.skipped == [("baseline", 0)]
    assert sorted(res.ran) == [("baseline", 1), ("no_se", 0), ("no_se", 1)]
    assert sorted(_complete_trials(db)) == sorted(res.ran + res.skipped)  # each pair stored exactly once
    # a third invocation has nothing to do; adding a seed runs only the new pairs
    assert run_ablation(cfg, progress=False, log=lambda m: None).ran == []
    more = run_ablation(cfg.with_seeds(3), progress=False, log=lambda m: None)
    assert sorted(more.ran) == [("baseline", 2), ("no_se", 2)]
    # a different recipe under the same storage is refused, not mixed in
    with pytest.raises(ConfigError, match="different recipe"):
        run_ablation(parse_ablation(_raw(train={"steps": 5, "batch_size": 16, "threads": 1})), progress=False,
                     log=lambda m: None)


@pytest.mark.slow
def test_failing_run_is_recorded_and_others_go_on(in_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nas_harness.backends.jobs as jobs

    real = jobs.run_trial

    def flaky(spec, **kw):
        if spec.arch.stages[0].se is None and spec.seed == 1:
            raise NonFiniteLossError(3, float("nan"))
        return real(spec, **kw)

    monkeypatch.setattr(jobs, "run_trial", flaky)
    cfg = parse_ablation(_raw())
    res = run_ablation(cfg, progress=False, log=lambda m: None)
    assert [(r.variant, r.seed, r.state) for r in res.failed] == [("no_se", 1, "failed")]
    assert "non-finite loss nan at step 3" in (res.failed[0].error or "")
    assert sum(r.state == "ok" for r in res.records) == 3
    _, text = write_report(cfg, res.records, figure=False)
    assert "no_se seed 1: NonFiniteLossError" in text and "| no_se | 1 (+1 failed) |" in text
    # not retried by default; retried on request
    monkeypatch.setattr(jobs, "run_trial", real)
    assert run_ablation(cfg, progress=False, log=lambda m: None).ran == []
    res = run_ablation(cfg, progress=False, retry_failed=True, log=lambda m: None)
    assert res.ran == [("no_se", 1)] and not res.failed


@pytest.mark.slow
def test_sigkill_then_cli_resume(in_tmp: Path) -> None:
    """Kill -9 the CLI once a pair is stored; re-running the same command skips it."""
    Path("tiny.toml").write_text(TOML.replace("steps = 3", "steps = 12"))
    code = "import sys; from nas_harness.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen([sys.executable, "-c", code, "ablate", "tiny.toml", "--no-progress", "--no-figure"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ | {"PYTHONPATH": ""})
    db = Path("results/tiny/ablation.db")
    sigkill_after_first_complete(proc, db, timeout_s=90)
    stored = _complete_trials(db)
    assert 1 <= len(stored) < 4
    assert cli_main(["ablate", "tiny.toml", "--no-progress", "--no-figure"]) == 0
    after = _complete_trials(db)
    assert sorted(after) == [("baseline", 0), ("baseline", 1), ("no_se", 0), ("no_se", 1)]  # none twice
    assert Path("results/tiny/summary.md").is_file()


def test_cli_bad_file_exits_2_with_one_line(in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Path("bad.toml").write_text(TOML.replace("seeds = 2", "seeds = 0"))
    assert cli_main(["ablate", "bad.toml"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "seeds: at least one seed" in err
    Path("bad2.toml").write_text(TOML.replace('"no_se"]', '"no_se", "nope"]'))
    assert cli_main(["ablate", "bad2.toml"]) == 2
    assert "unknown variant 'nope'" in capsys.readouterr().err
    assert not Path("results/tiny").exists()  # nothing ran, nothing stored
    Path("ok.toml").write_text(TOML)
    assert cli_main(["ablate", "ok.toml", "--dry-run"]) == 0
    assert "no_se" in capsys.readouterr().out


@pytest.mark.ray
@pytest.mark.slow
def test_ray_backend_runs_the_same_jobs_and_shares_the_store(in_tmp: Path, ray_local: None) -> None:
    """The Ray path goes through backends.run_jobs (same run_trial); its runs are stored like local ones."""
    cfg = parse_ablation(_raw(seeds=[0], run={"backend": "ray"}, ray={"cpus_per_trial": 1}))
    res = run_ablation(cfg, progress=False, log=lambda m: None)
    assert sorted(res.ran) == [("baseline", 0), ("no_se", 0)]
    assert all(r.state == "ok" and 0 <= r.record.test_acc <= 1 for r in res.records)
    assert res.records[1].record.params < res.records[0].record.params
    local = run_ablation(cfg.with_backend("local"), progress=False, log=lambda m: None)
    assert local.ran == [] and sorted(local.skipped) == [("baseline", 0), ("no_se", 0)]

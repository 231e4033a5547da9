"""``ablate`` and ``confirm`` with trackers: one parent run per job store, one child per stored run, the report
attached; a re-run (which trains nothing) logs nothing twice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers.studies import tiny_ablation, tiny_dict

from nas_harness.cli import main

pytestmark = pytest.mark.slow


def test_ablate_logs_every_run_once_with_its_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    mlflow_server: Any) -> None:
    table = f'[tracking]\nmlflow = true\nmlflow_uri = "{mlflow_server.url}"\nexperiment = "ablation"\n'
    (tmp_path / "a.toml").write_text(tiny_ablation(seeds=1, extra=table))
    monkeypatch.chdir(tmp_path)
    for _ in range(2):  # the second run trains nothing and logs nothing
        assert main(["ablate", "a.toml", "--no-progress"]) == 0
        client = mlflow_server.client()
        exp = client.get_experiment_by_name("ablation")
        runs = client.search_runs([exp.experiment_id], "tags.`nas.study` = 'tiny'")
        parents = [r for r in runs if r.data.tags["nas.role"] == "study"]
        children = [r for r in runs if r.data.tags["nas.role"] == "trial"]
        assert len(parents) == 1 and parents[0].data.tags["nas.kind"] == "ablation"
        assert sorted(c.data.tags["nas.trial"] for c in children) == ["baseline/seed0", "no_se/seed0"]
    for c in children:
        p, m = c.data.params, c.data.metrics
        assert p["variant"] == p["group"] and p["seed"] == "0" and p["threads"] == "1"
        assert c.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert m["test_acc_ci_low"] <= m["test_acc"] <= m["test_acc_ci_high"] and m["steps"] == 3
    artifacts = [a.path for a in client.list_artifacts(parents[0].info.run_id)]
    assert {"summary.md", "summary.csv", "runs.csv", "ablation.png"} <= set(artifacts)


def test_confirm_logs_its_runs_and_report_to_tensorboard(tmp_path: Path) -> None:
    from nas_harness.study.config import validate
    from nas_harness.study.search import run_search

    ea = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    cfg = validate(tiny_dict(tmp_path, sampler={"kind": "random"}, run={"n_trials": 1}))
    run_search(cfg, log=lambda m: None)
    real_study = cfg.study_dir
    tb = real_study.parent / "tb"
    argv = ["confirm", str(real_study), "--top", "1", "--seeds", "1", "--no-references", "--no-progress",
            "--no-figure", "--tensorboard", str(tb)]
    assert main(argv) == 0
    root = tb / "tiny-confirm"
    runs = [p for p in root.iterdir() if p.is_dir()]
    assert len(runs) == 1 and runs[0].name.endswith("seed1")
    acc = ea.EventAccumulator(str(root), size_guidance={ea.TENSORS: 0})
    acc.Reload()
    report = acc.Tensors("confirm.md/text_summary")[0].tensor_proto.string_val[0].decode()
    assert report == (real_study / "confirm.md").read_text()
    assert main(argv) == 0  # a re-run trains nothing and writes no run twice
    assert [p for p in root.iterdir() if p.is_dir()] == runs

"""End to end: a real tiny search (synthetic 16 px data, width-0.25 nets, 4 steps) -> figures, report, export."""

from __future__ import annotations

from pathlib import Path

import pytest

from nas_harness.arch import parse_arch
from nas_harness.cli import main
from nas_harness.results import export_arch, pareto_front, study_frame

STUDY = {
    "name": "tiny_e2e",
    "base": "b0",
    "base_width": 0.25,
    "base_depth": 0.34,
    "seed": 0,
    "space": {"kernels": [3, 5], "expands": [1, 3], "se": [True, False], "repeats_delta": 0},
    "data": {"dataset": "synthetic", "val_size": 64, "resolution": 16, "channels": 3},
    "train": {"epochs": None, "steps": 4, "batch_size": 32, "optimizer": "adamw", "lr": 0.01, "device": "cpu"},
    "trial": {"stem_stride": 1, "macs_resolution": 224},
    "objective": {"kind": "multi"},
    "sampler": {"kind": "nsgaii", "enqueue": ["base", "base-nose"]},
    "run": {"n_trials": 4, "progress": False, "plots": True},
}


@pytest.mark.slow
def test_tiny_search_to_report_and_export(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from nas_harness.study.config import validate
    from nas_harness.study.search import run_search

    d = {k: (dict(v) if isinstance(v, dict) else v) for k, v in STUDY.items()}
    d["run"]["results_dir"] = str(tmp_path / "results")
    cfg = validate(d)
    summary = run_search(cfg, progress=False, log=lambda msg: None)
    folder = cfg.study_dir
    # the search's own end-of-run hook wrote the accuracy-vs-MACs figure through nas_harness.plots
    assert any(Path(p).name == "accuracy_vs_macs.png" for p in summary.outputs)

    df = study_frame(folder)
    done = df[df["state"] == "COMPLETE"]
    assert len(done) >= 3 and done["arch"].map(lambda s: str(parse_arch(s)) == s).all()
    assert (done["macs"] > 0).all() and done["val_acc"].between(0, 1).all()
    assert set(df["reference"].dropna()) == {"base", "base-nose"}
    front = pareto_front(df)
    assert not front.empty

    assert main(["report", str(folder)]) == 0
    md = (folder / "report.md").read_text()
    for arch in front["arch"]:
        assert f"`{arch}`" in md
    assert "| base |" in md and "| base-nose |" in md
    assert (folder / "figures" / "accuracy_vs_macs.png").stat().st_size > 8_000

    exp = export_arch(df, rank=1)
    assert exp.arch_string == front.sort_values("front_rank").iloc[0]["arch"]
    assert (exp.num_classes, exp.in_channels, exp.stem_stride) == (10, 3, 1)
    capsys.readouterr()
    assert main(["export", str(folder), "--rank", "1"]) == 0
    assert exp.arch_string in capsys.readouterr().out.splitlines()

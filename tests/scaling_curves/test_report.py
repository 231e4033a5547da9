"""The report says what the constructed runs' intervals carry: gains, saturation, matched-MACs verdicts."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path

from helpers.studies import tiny_curves

from nas_harness.evaluation.store import StoredRun
from nas_harness.scaling_curves import CurvePoint, ScalingCurvesConfig, analyse, parse_scaling_curves, write_report

SEEDS = (0, 1, 2, 3)
JITTER = (0.004, -0.003, 0.001, -0.002)


def constructed(cfg: ScalingCurvesConfig, acc_of: Callable[[CurvePoint], float]) -> list[StoredRun]:
    """One ok run per (network, seed) with accuracy ``acc_of(point) + JITTER[seed]`` (+ one failed run)."""
    runs = []
    for key, p in cfg.networks().items():
        for s in SEEDS:
            runs.append(StoredRun(key, s, "ok", {"test_acc": acc_of(p) + JITTER[s] + 0.002 * (s % 2) * p.width}))
    runs.append(StoredRun(next(iter(cfg.networks())), 9, "failed", {}, "NonFiniteLossError: loss is nan"))
    return runs


def test_report_on_constructed_runs(tmp_path: Path) -> None:
    d = tomllib.loads(tiny_curves(curves="width = [1.0, 1.5, 2.0]\ndepth = [1.0, 2.0, 3.0]\ncompound_phi = [0, 1]"))
    d["seeds"] = list(SEEDS)
    cfg = parse_scaling_curves(d)

    def acc(p: CurvePoint) -> float:
        if p.phi is not None:
            return 0.60 if p.phi == 0 else 0.80  # compound: far above both curves at its MACs
        return 0.60 + 0.05 * (p.width - 1.0) if p.curve == "width" else 0.60  # width gains, depth is flat

    records = constructed(cfg, acc)
    rep = analyse(cfg, records, num_classes=10)
    assert [s.verdict for s in rep.segments["width"]] == ["gains", "gains"]
    assert rep.saturation["width"].startswith("still gaining at w=2")
    assert [s.verdict for s in rep.segments["depth"]] == ["not resolved from 0"] * 2
    assert rep.saturation["depth"].startswith("no step's gain is resolved from 0")
    by = {(m.compound, m.curve): m for m in rep.matches}
    assert by[("phi=0", "width")].verdict == "same network as w=1"
    assert by[("phi=1", "width")].verdict == "beats" and by[("phi=1", "depth")].verdict == "beats"
    assert all(s.n == 4 for ss in rep.summaries.values() for s in ss)  # the failed run is in no statistic
    paths, text = write_report(cfg, records, 10, out_dir=tmp_path)
    assert "compound phi=1: beats width; beats depth" in text
    assert "NonFiniteLossError" in text and "Failed runs" in text
    assert {p.name for p in paths} >= {"report.md", "report.html", "fig3_single.png", "fig8_compound.png"}
    assert "<table>" in (tmp_path / "report.html").read_text()

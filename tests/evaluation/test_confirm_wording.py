"""How ``confirm.md`` words its intervals, on constructed runs (no training): zero-width paired intervals and a
single seed are said as such, never as "tied within noise: +0.00 [+0.00, +0.00]"."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from nas_harness.evaluation.confirm import ConfirmResult, analyze, markdown
from nas_harness.evaluation.recipe import Candidate
from nas_harness.evaluation.store import StoredRun


def _cand(label: str, kind: str, macs: float) -> Candidate:
    return Candidate(job=label, label=label, kind=kind, arch=f"arch-{label}", macs=macs, params=1e6,
                     search_val=0.8, search_val_n=500, number=0)


def _result(runs: list[StoredRun], cands: list[Candidate], seeds: list[int]) -> ConfirmResult:
    recipe = SimpleNamespace(seed=0, describe=lambda: "tiny recipe")
    return ConfirmResult("s", "s-confirm", recipe, analyze(cands, runs, seeds), [], [], [], 0.0, Path("."))


def test_identical_and_constant_differences_are_worded_and_one_seed_has_no_interval() -> None:
    # a and b: the same accuracy on both seeds; the reference is 1 pp behind a on both seeds
    acc = {"a": {1: 0.80, 2: 0.84}, "b": {1: 0.80, 2: 0.84}, "ref": {1: 0.79, 2: 0.83}}
    cands = [_cand("a", "search", 2e6), _cand("b", "search", 3e6), _cand("ref", "reference", 4e6)]
    runs = [StoredRun(k, s, "ok", {"val_acc": v}) for k, by in acc.items() for s, v in by.items()]
    md = markdown(_result(runs, cands, [1, 2]))
    assert "a vs ref: +1.00 pp over 2 paired seed(s): beats on all 2 seeds by the same margin (zero-width " \
           "interval: no noise measured)." in md
    assert "identical on all 2 seeds (difference 0)" in md  # b against the best mean, a
    assert "[+0.00, +0.00]" not in md and "[+1.00, +1.00]" not in md and "tied within noise with it" not in md.lower()
    assert "clipped to [0, 100] %" in md and "paired t 95% interval" in md
    one = markdown(_result([r for r in runs if r.seed == 1], cands, [1]))
    assert "n/a (1 seed)" in one and "undecided (one pair)" in one

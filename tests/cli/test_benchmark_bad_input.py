"""``nas-harness benchmark``: every bad benchmark file or flag is one line on stderr, exit 2, nothing written."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from nas_harness.cli import main

CASES = [
    ("unknown-key", 'name = "b"\ntrials = 10\nbogus = 1\n', [], "bogus: unknown key"),
    ("grid-does-not-fit", 'name = "b"\nstrategies = ["grid"]\n', [], "strategies: 'grid' does not fit"),
    ("cmaes-does-not-fit", 'name = "b"\nstrategies = ["random", "cmaes"]\n', [], "strategies: 'cmaes' does not fit"),
    ("unknown-strategy", 'name = "b"\nstrategies = ["anneal"]\n', [], "strategies: 'anneal' is not a strategy"),
    ("duplicate-strategy", 'name = "b"\nstrategies = ["tpe", "tpe"]\n', [], "strategies: duplicate"),
    ("one-seed", 'name = "b"\nseeds = 1\n', [], "seeds"),
    ("budget-beyond-trials", 'name = "b"\ntrials = 10\nbudgets = [20]\n', [], "budgets: 20 is outside"),
    ("trials-nan", 'name = "b"\ntrials = nan\n', [], "trials"),
    ("latency-on-surrogate", 'name = "b"\nsource = "surrogate"\nobjective = "multi"\ncost = "latency_zcu102"\n', [],
     "cost: 'latency_zcu102' is measured for the table's archs only"),
    ("cost-unknown", 'name = "b"\nobjective = "multi"\ncost = "flops"\n', [], "cost"),
    ("inert-split-seed", 'name = "b"\nsplit_seed = 3\n', [], "split_seed"),
    ("recorded-without-folders", 'name = "b"\nsource = "recorded"\n', [], "recorded: source = 'recorded' needs"),
    ("recorded-missing-csv", 'name = "b"\n', ["--table-from", "nowhere"], "trials.csv"),
    ("more-trials-than-records", 'name = "b"\ntrials = 6000\n', [], "trials: 6000 > the table's 5125 archs"),
    ("not-toml", "name = \n", [], "b.toml"),
    ("bad-name", 'name = "../x"\n', [], "name"),
    ("flag-seeds-zero", 'name = "b"\n', ["--seeds", "0"], "--seeds"),
]


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in root.rglob("*")}


@pytest.mark.parametrize(("text", "flags", "expect"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_benchmark_input_is_one_line_exit_2_and_nothing_written(text: str, flags: list[str], expect: str,
                                                                    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "b.toml").write_text(text)
    before = _snapshot(tmp_path)
    try:
        code = main(["benchmark", "b.toml", *flags])
    except SystemExit as exc:  # a flag refused by argparse
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("nas-harness benchmark: error: "), lines[0]
    assert expect in lines[0], lines[0]
    assert _snapshot(tmp_path) == before


def test_no_file_and_no_table_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["benchmark"]) == 2
    assert capsys.readouterr().err.strip() == ("nas-harness benchmark: error: benchmark: give a benchmark FILE or "
                                               "--table-from RESULTS_DIR")

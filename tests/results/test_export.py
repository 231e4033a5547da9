from __future__ import annotations

import json
from pathlib import Path

import pytest

from nas_harness.arch import Arch, parse_arch
from nas_harness.cli import main
from nas_harness.errors import ConfigError
from nas_harness.flops import count_params
from nas_harness.results import export_arch, pareto_front, rank_trials, study_frame
from nas_harness.scaling import compound


def test_rank_follows_the_objective(study_dir: Path) -> None:
    df = study_frame(study_dir)
    front = pareto_front(df).sort_values("front_rank")
    # multi-objective study: auto ranks along the front, most accurate first
    assert rank_trials(df)["number"].tolist() == front["number"].tolist()
    by_acc = rank_trials(df, "val_acc")
    assert by_acc["val_acc"].is_monotonic_decreasing and not by_acc["is_reference"].any()
    assert len(by_acc) == 25  # complete, full budget, not a reference
    with pytest.raises(ConfigError, match="rank_by: 'x'"):
        rank_trials(df, "x")


def test_export_round_trips_arch_string_spec_and_builder(study_dir: Path, tmp_path: Path) -> None:
    df = study_frame(study_dir)
    exp = export_arch(df, rank=2, family=[1, 2])
    row = pareto_front(df).sort_values("front_rank").iloc[1]
    assert exp.trial == row["number"] and exp.arch_string == row["arch"]
    assert str(parse_arch(exp.arch_string)) == exp.arch_string
    # the study trained Fashion-MNIST (10 classes, 1 channel) with a stride-1 stem
    assert (exp.num_classes, exp.in_channels, exp.stem_stride) == (10, 1, 1)
    paths = exp.write(tmp_path, "rank2")
    assert paths[0].read_text().strip() == row["arch"]
    spec = json.loads(paths[1].read_text())
    assert Arch.from_dict(spec["spec"]) == parse_arch(row["arch"]) and spec["metrics"]["val_acc"] == row["val_acc"]
    # the builder call really builds the network
    ns: dict = {}
    exec(paths[2].read_text(), ns)
    n_params = sum(p.numel() for p in ns["model"].parameters())
    assert n_params == count_params(exp.arch, num_classes=10, in_channels=1)
    # compound-scaled family at 224 px base
    assert [f["phi"] for f in exp.family] == [1, 2]
    s2 = compound(exp.arch, 2)
    assert exp.family[1]["arch"] == str(s2.arch) and exp.family[1]["resolution"] == s2.resolution
    assert exp.family[0]["macs"] < exp.family[1]["macs"]


def test_export_by_trial_and_errors(study_dir: Path) -> None:
    df = study_frame(study_dir)
    assert export_arch(df, trial=0).trial == 0  # a failed trial still has its arch
    with pytest.raises(ConfigError, match="only 5 eligible"):
        export_arch(df, rank=6)
    with pytest.raises(ConfigError, match="trial: no trial 999"):
        export_arch(df, trial=999)
    with pytest.raises(ConfigError, match="rank: expected an integer >= 1"):
        export_arch(df, rank=0)


def test_cli_export(study_dir: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["export", str(study_dir), "--rank", "1", "--family", "1"]) == 0
    out = capsys.readouterr().out
    best = pareto_front(study_frame(study_dir)).sort_values("front_rank").iloc[0]
    assert best["arch"] in out.splitlines()
    assert f'build_model(parse_arch("{best["arch"]}"), num_classes=10, in_channels=1, stem_stride=1)' in out
    assert "phi=1" in out
    assert (study_dir / "export" / "rank1_pareto.arch").read_text().strip() == best["arch"]
    assert main(["export", str(study_dir), "--rank", "40"]) == 2
    assert "rank: study 'fake' has only 5" in capsys.readouterr().err


def test_cli_export_of_two_rankings_keeps_both(study_dir: Path, capsys: pytest.CaptureFixture) -> None:
    """Each ranking writes its own files: exporting rank 2 by val_acc after rank 2 of the default ranking (the
    Pareto front here: another arch) replaces nothing; the JSON says which ranking and place it holds."""
    out = study_dir / "export"
    assert main(["export", str(study_dir), "--rank", "2"]) == 0
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(first) == ["rank2_pareto.arch", "rank2_pareto.json", "rank2_pareto_build.py"]
    assert main(["export", str(study_dir), "--by", "val_acc", "--rank", "2"]) == 0
    assert main(["export", str(study_dir), "--by", "reward", "--rank", "2"]) == 0
    assert main(["export", str(study_dir), "--trial", "7"]) == 0
    capsys.readouterr()
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.name in first} == first
    df = study_frame(study_dir)
    pareto2, acc2 = rank_trials(df, "pareto").iloc[1], rank_trials(df, "val_acc").iloc[1]
    assert pareto2["arch"] != acc2["arch"]  # the two rankings disagree: one file name would have lost one
    for stem, row in (("rank2_pareto", pareto2), ("rank2_val_acc", acc2),
                      ("rank2_reward", rank_trials(df, "reward").iloc[1]), ("trial7", df[df["number"] == 7].iloc[0])):
        assert (out / f"{stem}.arch").read_text().strip() == row["arch"]
    spec = json.loads((out / "rank2_val_acc.json").read_text())
    assert (spec["rank"], spec["ranked_by"]) == (2, "val_acc")
    spec = json.loads((out / "trial7.json").read_text())
    assert (spec["rank"], spec["ranked_by"]) == (None, None)
    assert len(list(out.iterdir())) == 12


def _scale_row(capsys: pytest.CaptureFixture, argv: list[str]) -> tuple[int, int]:
    """(params, MACs) of the one variant `nas-harness scale` prints."""
    assert main(argv) == 0
    row = capsys.readouterr().out.strip().splitlines()[-1].split()
    return int(row[4].replace(",", "")), int(row[6].replace(",", ""))


def test_cli_export_family_counts_the_deployed_network_as_scale_does(study_dir: Path,
                                                                     capsys: pytest.CaptureFixture) -> None:
    """The family's MACs and params are those of the deployed network (the study's macs_num_classes = 10 here, 3
    input channels), as the study's records and `nas-harness scale` count, not of the 1-channel proxy that the
    exported build_model call builds; the JSON says at which classes and channels, and so does the printed line."""
    assert main(["export", str(study_dir), "--rank", "1", "--family", "1", "2"]) == 0
    out = capsys.readouterr().out
    exported = json.loads((study_dir / "export" / "rank1_pareto.json").read_text())
    arch = parse_arch(exported["arch"])
    assert exported["in_channels"] == 1  # the proxy the build_model call builds
    assert "counted for the deployed network (10 classes, 3 input channels)" in out
    for member in exported["family"]:
        assert (member["macs_num_classes"], member["macs_in_channels"]) == (10, 3)
        params, macs = _scale_row(capsys, ["scale", str(arch), "--phi", f"{member['phi']:g}", "--num-classes", "10"])
        assert (member["params"], member["macs"]) == (params, macs)
        assert member["params"] != count_params(compound(arch, member["phi"]).arch, num_classes=10, in_channels=1)
        assert f"{macs / 1e6:.2f} MMACs  {params:,} params" in out

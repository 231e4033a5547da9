"""Every variant of a scaling-curves file is what `nas-harness scale` prints for the same multipliers (arch and
MACs, both conventions), and every bad key is refused in one line naming it."""

from __future__ import annotations

import copy
import re
import tomllib
from pathlib import Path

import pytest
from helpers.studies import tiny_curves

from nas_harness.cli import main as cli_main
from nas_harness.errors import ConfigError
from nas_harness.scaling_curves import network_macs, parse_scaling_curves

RAW = tomllib.loads(tiny_curves())


def parse(**curves: object) -> object:
    d = copy.deepcopy(RAW)
    d["curves"].update(curves)
    return parse_scaling_curves(d)


def scale_rows(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[list[list[str]], dict[str, str]]:
    """`nas-harness scale ... --show-arch`: the table rows and each variant's arch string."""
    assert cli_main(["scale", *argv, "--show-arch"]) == 0
    out = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in out if re.match(r"^phi=", line) and ":" not in line]
    archs = dict(line.split(": ", 1) for line in out if re.match(r"^phi=\S+: ", line))
    return rows, archs


def test_every_variant_is_what_scale_prints(capsys: pytest.CaptureFixture[str]) -> None:
    cfg = parse(width=[1.0, 1.3, 2.6], depth=[1.0, 1.7, 4.0], resolution=[1.0, 1.25, 2.0],
                width_at=[[2.0, 1.5]], compound_phi=[0, 1, 2.5], alpha=1.3, beta=1.05, gamma=1.2)
    assert cfg.coefficients == (1.3, 1.05, 1.2)
    checked = 0
    for p in cfg.points:
        if p.phi is not None:  # compound: scale --phi P with the file's alpha, beta, gamma
            flags = ["--phi", f"{p.phi!r}", "--alpha", "1.3", "--beta", "1.05", "--gamma", "1.2"]
        else:  # single dimension / Figure 4: phi 1 with alpha = d, beta = w, gamma = r
            flags = ["--phi", "1", "--alpha", repr(p.depth), "--beta", repr(p.width), "--gamma", repr(p.res_mult)]
        macs = network_macs(cfg, p, num_classes=10)
        # deployed convention: the file's macs_resolution (16 here) x r, [trial] macs_num_classes (1000)
        rows, archs = scale_rows([str(cfg.base_arch), *flags, "--resolution", "16"], capsys)
        (row,) = rows
        assert int(row[6].replace(",", "")) == macs["deployed"], p
        assert int(row[4].replace(",", "")) == macs["params"], p
        assert int(row[3]) == p.macs_resolution
        assert next(iter(archs.values())) == str(p.arch), p
        # proxy convention: the training resolution (data.resolution x r), the data's classes; synthetic data
        # has 3 channels and the file keeps the arch's stem, so `scale --resolution 16` counts the same network
        rows, _ = scale_rows([str(cfg.base_arch), *flags, "--resolution", str(cfg.data.resolution),
                              "--num-classes", "10"], capsys)
        assert int(rows[0][6].replace(",", "")) == macs["proxy"], p
        assert int(rows[0][3]) == p.resolution
        checked += 1
    assert checked == len(cfg.points) == 3 + 3 + 3 + 3 + 3


def test_deployed_macs_at_224_px_and_1000_classes_match_scale_b0(capsys: pytest.CaptureFixture[str]) -> None:
    d = copy.deepcopy(RAW)
    d.update(base="b0")
    d["trial"] = {"macs_resolution": 224, "macs_num_classes": 1000}
    d["curves"] = {"compound_phi": [0, 1, 2]}
    cfg = parse_scaling_curves(d)
    rows, archs = scale_rows(["b0", "--phi", "0", "1", "2"], capsys)  # the paper's coefficients, 224 px
    for p, row, arch in zip(cfg.points, rows, archs.values()):
        assert int(row[6].replace(",", "")) == network_macs(cfg, p, 10)["deployed"]
        assert str(p.arch) == arch and p.macs_resolution == int(row[3])


def test_shared_networks_are_one_job_and_points_keep_their_curves() -> None:
    cfg = parse()
    nets = cfg.networks()
    # the base is on width, depth, resolution and is phi = 0; d=2 is w=1 of nothing here (the panel is at r=1.5)
    assert len(cfg.points) == 2 + 2 + 2 + 2 + 2 and len(nets) == 7
    base = [p for p in cfg.points if p.key == cfg.points[0].key]
    assert {p.curve for p in base} == {"width", "depth", "resolution", "compound"}
    assert cfg.curve_names() == ["width", "depth", "resolution", "width (d=2, r=1.5)", "compound"]


BAD = [
    ({"width": [1.0, float("nan")]}, "curves.width[1] = nan is invalid: input should be a finite number"),
    ({"depth": [1.0, float("inf")]}, "curves.depth[1]"),
    ({"width": [1.0, 4.5]}, "curves.width[1] = 4.5 is invalid: input should be less than or equal to 4"),
    ({"resolution": [0.5, 1.0]}, "curves.resolution[0] = 0.5 is invalid"),
    ({"width": []}, "curves.width: an empty curve"),
    ({"depth": [2.0]}, "curves.depth: a curve needs at least 2 multipliers"),
    ({"width": [2.0, 1.0]}, "curves.width: multipliers must be increasing"),
    ({"compound_phi": []}, "curves.compound_phi: an empty curve"),
    ({"compound_phi": [-1.0]}, "curves.compound_phi[0] = -1.0 is invalid"),
    ({"compound_phi": [11]}, "curves.compound_phi[0] = 11 is invalid"),
    ({"width_at": []}, "curves.width_at: an empty panel"),
    ({"width_at": [[1.0]]}, "curves.width_at: entry 0 is [1.0]"),
    ({"width_at": [[1.0, 5.0]]}, "curves.width_at[0][1] = 5.0 is invalid"),
    ({"alpha": 0.9}, "curves.alpha = 0.9 is invalid"),
    ({"gamma": 1.1, "from_study": "s.toml"}, "curves.gamma: give alpha, beta, gamma or from_study, not both"),
    ({"from_study": "none.toml"}, "curves.from_study: study file 'none.toml'"),
    ({"macs": "flops"}, "curves.macs"),
    ({"wdith": [1.0, 2.0]}, "curves.wdith"),
    ({"resolution": [1.0, 4.0]}, "curves.resolution[1]"),  # 64 px is fine ...
]


@pytest.mark.parametrize(("curves", "expect"), BAD, ids=[e.split(":")[0].split(" ")[0] + str(i)
                                                         for i, (_, e) in enumerate(BAD)])
def test_bad_curves_are_one_line_naming_the_key(curves: dict, expect: str) -> None:
    d = copy.deepcopy(RAW)
    d["curves"].update(curves)
    if curves.get("resolution") == [1.0, 4.0]:
        d["data"]["resolution"] = 512  # ... but 4 x 512 = 2048 px is more than the data can give
    with pytest.raises(ConfigError) as e:
        parse_scaling_curves(d)
    assert "\n" not in str(e.value) and expect in str(e.value), str(e.value)


def test_no_curves_pad_and_a_missing_table_are_refused() -> None:
    d = copy.deepcopy(RAW)
    d["curves"] = {"macs": "proxy"}
    with pytest.raises(ConfigError, match="curves: no curve"):
        parse_scaling_curves(d)
    d = copy.deepcopy(RAW)
    d["data"]["fit"] = "pad"
    with pytest.raises(ConfigError, match=r"data\.fit: 'pad' cannot scale the resolution"):
        parse_scaling_curves(d)
    d = copy.deepcopy(RAW)
    del d["curves"]
    with pytest.raises(ConfigError, match="curves: required"):
        parse_scaling_curves(d)


def test_coefficients_from_a_scaling_search(tmp_path: Path) -> None:
    """from_study takes the best triple of the study's `search --scaling` results (stored as the search does)."""
    import optuna
    from helpers.studies import tiny_dict, to_toml

    from nas_harness.records import TrialRecord, open_storage
    from nas_harness.study.config import load_study

    study_file = tmp_path / "s.toml"
    study_file.write_text(to_toml(tiny_dict(tmp_path)))
    scfg = load_study(study_file)
    d = copy.deepcopy(RAW)
    d["curves"]["from_study"] = str(study_file)
    with pytest.raises(ConfigError, match=r"curves\.from_study: .*does not exist"):
        parse_scaling_curves(d)
    scfg.study_dir.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(storage=open_storage(scfg.storage_url), study_name="tiny-scaling",
                                direction="maximize")
    dist = optuna.distributions.CategoricalDistribution([1.0, 1.1, 1.2])
    for (a, b, g), acc in (((1.2, 1.1, 1.1), 0.61), ((1.1, 1.2, 1.0), 0.72)):
        rec = TrialRecord(arch=f"net{a}{b}{g}", val_acc=acc, val_n=500, macs=1, macs_resolution=16)
        trial = optuna.trial.create_trial(params={"alpha": a, "beta": b, "gamma": g},
                                          distributions={"alpha": dist, "beta": dist, "gamma": dist},
                                          value=acc, user_attrs=rec.to_attrs())
        study.add_trial(trial)
    cfg = parse_scaling_curves(d)
    assert cfg.coefficients == (1.1, 1.2, 1.0)
    assert "tiny-scaling" in cfg.coefficient_source and "tied within noise" in cfg.coefficient_source

"""Study-file schema: defaults, overrides, and one-line errors naming the key path (CLI exit 2, nothing written)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from nas_harness.cli import main
from nas_harness.errors import ConfigError
from nas_harness.study.config import SECTIONS, load_study, schema_markdown, study_json_schema, validate

STUDIES = Path(__file__).resolve().parents[2] / "studies"

MINIMAL = {"name": "t", "data": {"dataset": "synthetic"}}


def _v(**extra) -> object:
    d = {**MINIMAL, **extra}
    return validate(d)


def test_defaults_filled_and_documented() -> None:
    cfg = _v()
    assert cfg.objective.kind == "reward" and cfg.objective.exponents == (-0.07, -0.07)
    assert cfg.run.n_trials == 20 and cfg.run.backend == "local" and cfg.run.heartbeat_s == 10
    assert cfg.train.threads is None  # fixed per study when the study is created
    assert cfg.storage_url == "sqlite:///results/t/study.db"
    md = schema_markdown()
    for sec, model in SECTIONS.items():
        for name, field in model.model_fields.items():
            if sec == "" and name in SECTIONS:
                continue  # a section of its own
            assert (f"`{sec}.{name}`" if sec else f"`{name}`") in md, (sec, name)
            if sec not in ("data",) and not (sec == "train" and name in ("seed",)):
                assert field.description, f"{sec}.{name} has no description"
    schema = study_json_schema()
    json.dumps(schema)
    assert schema["title"] == "nas-harness study file" and "name" in schema["required"]


def test_constraint_sets_exponents() -> None:
    cfg = _v(objective={"kind": "reward", "constraint": "hard"})
    assert cfg.objective.exponents == (0.0, -1.0)
    cfg = _v(objective={"kind": "reward", "constraint": "custom", "alpha": -0.1, "beta": -0.2})
    assert cfg.objective.exponents == (-0.1, -0.2)


@pytest.mark.parametrize(("extra", "pattern"), [
    ({"sampler": {"kind": "cmaes"}}, r"^sampler\.kind = 'cmaes' is invalid: input should be 'tpe', 'nsgaii'"),
    ({"run": {"n_trials": "ten"}}, r"^run\.n_trials = 'ten' is invalid: input should be a valid integer"),
    ({"run": {"n_trials": 0}}, r"^run\.n_trials = 0 is invalid: input should be greater than or equal to 1"),
    ({"run": {"n_trals": 3}}, r"^run\.n_trals: unknown key; allowed keys: storage, results_dir"),
    ({"bogus": 1}, r"^bogus: unknown key; allowed keys: name, description"),
    ({"ray": {"gpus_per_trial": -0.5}}, r"^ray\.gpus_per_trial = -0\.5 is invalid"),
    ({"trial": {"evaluate_test": 1}}, r"^trial\.evaluate_test = 1 is invalid: input should be a valid boolean"),
    ({"objective": {"kind": "budget"}}, r"^objective\.max_macs: the budget objective needs"),
    ({"objective": {"kind": "multi"}, "pruner": {"kind": "median"}}, r"^pruner\.kind: 'median' is not supported"),
    ({"objective": {"kind": "multi"}, "ray": {"scheduler": "asha"}}, r"^ray\.scheduler: 'asha' needs a single"),
    ({"ray": {"asha": True}}, r"^ray\.asha: replaced by scheduler = 'asha'"),
    ({"run": {"storage": "results/x.db"}}, r"^run\.storage: 'results/x.db' is not a storage URL"),
    ({"sampler": {"enqueue": ["b0", 3]}}, r"^sampler\.enqueue\[1\] = 3 is invalid"),
    ({"data": {"dataset": "synthetic", "resolution": 3}}, r"^data\.resolution"),
    ({"space": {"kernels": [4]}}, r"^space\.kernels"),
    ({"base": "b9"}, r"^base: "),
    ({"name": "a/b"}, r"^name = 'a/b' is invalid: 'a/b' is not a valid name"),
    ({"objective": {"alpha": -0.5}}, r"^objective\.alpha: -0\.5 has no effect here: it applies to kind = 'reward' "
                                     r"with constraint = 'custom' only"),
    ({"objective": {"kind": "budget", "max_macs": 1e6, "target_macs": 5e6}}, r"^objective\.target_macs: 5000000\.0 "
                                                                             r"has no effect"),
    ({"sampler": {"kind": "random", "n_startup_trials": 3}}, r"^sampler\.n_startup_trials: 3 has no effect"),
    ({"pruner": {"kind": "none", "warmup_epochs": 2}}, r"^pruner\.warmup_epochs: 2 has no effect"),
    ({"objective": {"target_macs": float("nan")}}, r"^objective\.target_macs = nan is invalid: input should be a "
                                                   r"finite number"),
    ({"objective": {"target_macs": float("inf")}}, r"^objective\.target_macs = inf is invalid"),
    ({"run": {"timeout_s": float("nan")}}, r"^run\.timeout_s = nan is invalid"),
    ({"name": "x" * 300}, r"^name = 'xxxx.*is invalid: .* is not a valid name: 1-64 letters"),
    ({"name": "a\x00b"}, r"^name = 'a\\x00b' is invalid"),
])
def test_bad_values_name_the_key(extra: dict, pattern: str) -> None:
    with pytest.raises(ConfigError) as err:
        _v(**extra)
    msg = str(err.value)
    assert "\n" not in msg
    assert re.search(pattern, msg), msg


def test_missing_name() -> None:
    with pytest.raises(ConfigError, match=r"^name: required key is missing"):
        validate({"data": {"dataset": "synthetic"}})


def test_overrides_are_validated_too(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text('name = "s"\n[data]\ndataset = "synthetic"\n')
    cfg = load_study(f, {"run.n_trials": 3, "run.backend": "ray", "ray.gpus_per_trial": 0.25, "seed": None})
    assert cfg.run.n_trials == 3 and cfg.run.backend == "ray" and cfg.ray.gpus_per_trial == 0.25
    with pytest.raises(ConfigError, match=r"^run\.backend = 'slurm' is invalid"):
        load_study(f, {"run.backend": "slurm"})


def test_toml_syntax_error_is_one_line(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text('name = "s\n')
    with pytest.raises(ConfigError, match=r"invalid TOML"):
        load_study(f)


@pytest.mark.parametrize("body", [
    'name = "bad"\n[sampler]\nkind = "annealing"\n',
    'name = "bad"\n[run]\nbackend = "local"\nextra = 1\n',
    'name = "bad"\n[data]\ndataset = "synthetic"\nresolution = "big"\n',
])
def test_cli_rejects_bad_study_exit_2_nothing_written(tmp_path: Path, body: str, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    f = tmp_path / "bad.toml"
    f.write_text(body)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["search", str(f)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nas-harness search: error:") and "\n" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no results/ folder, no db


def test_cli_bad_flag_value_exit_2(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    f = tmp_path / "ok.toml"
    f.write_text('name = "ok"\n[data]\ndataset = "synthetic"\n')
    assert main(["search", str(f), "--gpus-per-trial", "-1"]) == 2
    assert main(["search", str(f), "--backend", "mpi"]) == 2
    assert not (tmp_path / "results").exists()


SEARCH_STUDIES = ["quickstart", "mnasnet_reward", "multi_objective_nsga2", "hard_budget", "gpu_fashion_mnist",
                  "cifar10"]


@pytest.mark.parametrize("path", [STUDIES / f"{n}.toml" for n in SEARCH_STUDIES], ids=lambda p: p.name)
def test_shipped_studies_are_valid_and_documented(path: Path) -> None:
    text = path.read_text()
    assert text.lstrip().startswith("#"), "each study file starts with a comment saying what it is for"
    assert re.search(r"(?i)cost|takes|minutes|hours", text.split("\n\n")[0])
    cfg = load_study(path)
    assert cfg.name == path.stem


def test_missing_dataset_exit_2_nothing_written(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    f = tmp_path / "nodata.toml"
    f.write_text(f'name = "nodata"\n[data]\ndataset = "folder"\nroot = "{tmp_path / "missing"}"\nresolution = 16\n')
    assert main(["search", str(f)]) == 2
    assert "DataError" not in capsys.readouterr().err  # a plain one-line message, no traceback
    assert not (tmp_path / "results").exists()

"""Study-file schema: defaults, overrides, and one-line errors naming the key path (CLI exit 2, nothing written)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nas_harness.cli import main
from nas_harness.errors import ConfigError
from nas_harness.study.config import SCHEMA, load_study, schema_markdown, validate

STUDIES = Path(__file__).resolve().parents[2] / "studies"

MINIMAL = {"name": "t", "data": {"dataset": "synthetic"}}


def _v(**extra) -> object:
    d = {**MINIMAL, **extra}
    return validate(d)


def test_defaults_filled_and_documented() -> None:
    cfg = _v()
    assert cfg.objective["kind"] == "reward" and cfg.objective["alpha"] == -0.07
    assert cfg.run["n_trials"] == 20 and cfg.run["backend"] == "local"
    assert cfg.storage_url == "sqlite:///results/t/study.db"
    doc = validate.__module__
    import importlib

    module_doc = importlib.import_module(doc).__doc__
    md = schema_markdown()
    for sec, keys in SCHEMA.items():
        for k in keys:
            # every key appears in the module's documentation table and in the generated markdown
            assert (k if not sec else f"[{sec}].{k}") in module_doc, k
            assert (f"`{sec}.{k}`" if sec else f"`{k}`") in md


def test_hard_constraint_sets_exponents() -> None:
    cfg = _v(objective={"kind": "reward", "constraint": "hard"})
    assert (cfg.objective["alpha"], cfg.objective["beta"]) == (0.0, -1.0)
    cfg = _v(objective={"kind": "reward", "constraint": "custom", "alpha": -0.1, "beta": -0.2})
    assert (cfg.objective["alpha"], cfg.objective["beta"]) == (-0.1, -0.2)


@pytest.mark.parametrize(("extra", "pattern"), [
    ({"sampler": {"kind": "cmaes"}}, r"^sampler\.kind: 'cmaes' is not allowed; allowed values: 'tpe', 'nsgaii'"),
    ({"run": {"n_trials": "ten"}}, r"^run\.n_trials: expected an integer, got str"),
    ({"run": {"n_trials": 0}}, r"^run\.n_trials: 0 is out of range; allowed: >= 1"),
    ({"run": {"n_trals": 3}}, r"^run\.n_trals: unknown key; allowed keys: n_trials, timeout_s"),
    ({"bogus": 1}, r"^bogus: unknown key; allowed keys: name, description"),
    ({"ray": {"gpus_per_trial": -0.5}}, r"^ray\.gpus_per_trial: -0\.5 is out of range"),
    ({"trial": {"evaluate_test": 1}}, r"^trial\.evaluate_test: expected a boolean"),
    ({"objective": {"kind": "budget"}}, r"^objective\.max_macs: the budget objective needs"),
    ({"objective": {"kind": "multi"}, "pruner": {"kind": "median"}}, r"^pruner\.kind: 'median' is not supported"),
    ({"objective": {"kind": "multi"}, "ray": {"asha": True}}, r"^ray\.asha: ASHA needs a single objective"),
    ({"run": {"storage": "results/x.db"}}, r"^run\.storage: 'results/x.db' is not a storage URL"),
    ({"run": {"storage": "journal:x.log", "heartbeat_s": 10}}, r"^run\.heartbeat_s: heartbeats need an RDB"),
    ({"sampler": {"enqueue": ["b0", 3]}}, r"^sampler\.enqueue\[1\]: expected a string"),
    ({"data": {"dataset": "synthetic", "resolution": 3}}, r"^data\.resolution"),
    ({"space": {"kernels": [4]}}, r"^space\.kernels"),
    ({"base": "b9"}, r"^base: "),
    ({"name": "a/b"}, r"^name: 'a/b' is not a valid study name"),
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
    assert cfg.run["n_trials"] == 3 and cfg.run["backend"] == "ray" and cfg.ray["gpus_per_trial"] == 0.25
    with pytest.raises(ConfigError, match=r"^run\.backend: 'slurm' is not allowed"):
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
    cfg = load_study(path, check_owned=path.name != "cifar10.toml")  # cifar10 needs local data to validate
    assert cfg.name == path.stem


def test_missing_dataset_exit_2_nothing_written(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    f = tmp_path / "nodata.toml"
    f.write_text(f'name = "nodata"\n[data]\ndataset = "folder"\nroot = "{tmp_path / "missing"}"\nresolution = 16\n')
    assert main(["search", str(f)]) == 2
    assert "DataError" not in capsys.readouterr().err  # a plain one-line message, no traceback
    assert not (tmp_path / "results").exists()

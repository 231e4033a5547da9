"""The ``[tracking]`` table and the ``--mlflow`` / ``--tensorboard`` flags: defaults, bad input as one line
(exit 2, nothing written), and what a logged trial holds (no credential in any text)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.studies import tiny_ablation, tiny_dict, to_toml

from nas_harness.cli import main
from nas_harness.errors import ConfigError
from nas_harness.records import TrialRecord
from nas_harness.tracking import TrackingConfig, clean, entry, tracking_overrides


def test_defaults_are_folders_under_the_results_folder(tmp_path: Path) -> None:
    off = TrackingConfig()
    assert not off.active and not off.settings(tmp_path).active
    on = TrackingConfig(mlflow=True, tensorboard=True).settings(tmp_path / "s")
    assert on.mlflow_uri == str(tmp_path / "s" / "mlruns") and on.tensorboard_dir == str(tmp_path / "s" / "tensorboard")
    server = TrackingConfig(mlflow=True, mlflow_uri="http://host:5000").settings(tmp_path)
    assert server.mlflow_uri == "http://host:5000" and server.tensorboard_dir is None
    assert tracking_overrides("", None) == {"tracking.mlflow": True}
    assert tracking_overrides("http://h:1", "tb") == {"tracking.mlflow": True, "tracking.mlflow_uri": "http://h:1",
                                                      "tracking.tensorboard": True, "tracking.tensorboard_dir": "tb"}


@pytest.mark.parametrize(("table", "expect"), [
    ({"mlflow": True, "mlflow_uri": "ftp://host/x"}, "tracking.mlflow_uri: 'ftp' is not an MLflow tracking URI"),
    ({"mlflow_uri": "http://host:5000"}, "tracking.mlflow_uri: 'http://host:5000' has no effect here"),
    ({"tensorboard_dir": "tb"}, "tracking.tensorboard_dir: 'tb' has no effect here"),
    ({"mlflow": "yes"}, "tracking.mlflow = 'yes' is invalid"),
    ({"mlflow": True, "timeout_s": 0}, "tracking.timeout_s = 0 is invalid"),
    ({"wandb": True}, "tracking.wandb: unknown key; allowed keys: mlflow, mlflow_uri"),
])
def test_a_bad_table_is_one_line_naming_the_key(tmp_path: Path, table: dict, expect: str) -> None:
    from nas_harness.study.config import validate

    with pytest.raises(ConfigError) as err:
        validate(tiny_dict(tmp_path, tracking=table))
    assert expect in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("argv", [
    ["search", "s.toml", "--mlflow", "ftp://host/x"],
    ["search", "s.toml", "--tensorboard", "bad\x01dir"],
    ["ablate", "a.toml", "--mlflow", "gopher://x"],
])
def test_bad_flags_exit_2_with_one_line_and_write_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture, argv: list[str]) -> None:
    d = tiny_dict(tmp_path)
    d["run"]["results_dir"] = "results"
    (tmp_path / "s.toml").write_text(to_toml(d))
    (tmp_path / "a.toml").write_text(tiny_ablation())
    monkeypatch.chdir(tmp_path)
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and ("mlflow" in err[0] or "tensorboard" in err[0]), err
    assert not (tmp_path / "results").exists()


def test_a_logged_trial_holds_its_record_without_credentials() -> None:
    url = "postgresql://bob:hunter2@db.example/x"
    rec = TrialRecord(arch="a", macs=10, params=5, val_acc=0.5, val_n=100, test_acc=0.25, test_n=40, seed=3,
                      threads=2, device="cpu", epochs=2.0, versions={"torch": "2"},
                      fail_reason=f"OperationalError: cannot reach {url} (password hunter2)")
    e = entry("7", "trial 7", "fail", rec, values=None, curve={1: 0.4, 2: 0.5}, curve_name="per_epoch.val_acc",
              secrets=[url])
    assert "hunter2" not in repr(e) and "postgresql://bob:***@db.example/x" in e.params["fail_reason"]
    assert e.params["arch"] == "a" and e.params["seed"] == "3" and e.params["version.torch"] == "2"
    assert e.metrics["val_acc"] == 0.5 and e.metrics["macs"] == 10 and e.metrics["epochs"] == 2.0
    assert e.metrics["val_acc_ci_low"] < 0.5 < e.metrics["val_acc_ci_high"]
    assert e.metrics["test_acc_ci_low"] < 0.25 < e.metrics["test_acc_ci_high"]
    assert e.curves == {"per_epoch.val_acc": [(1, 0.4), (2, 0.5)]}
    assert clean("see http://u:p%40ss@h:5000/api", ()) == "see http://u:***@h:5000/api"

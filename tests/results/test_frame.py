from __future__ import annotations

from pathlib import Path

import optuna
import pandas as pd
import pytest
from helpers.fakes import make_study

from nas_harness.arch import parse_arch
from nas_harness.errors import ConfigError
from nas_harness.presets import efficientnet_b0
from nas_harness.results import choice_columns, export_frame, resolve_source, study_frame

ARCH = str(efficientnet_b0())  # a real arch string: readers parse the stored ones


def test_frame_has_one_row_per_trial_with_contract_columns(study_dir: Path) -> None:
    df = study_frame(study_dir)
    study = optuna.load_study(study_name="fake", storage=f"sqlite:///{study_dir / 'study.db'}")
    assert len(df) == len(study.trials) == 32
    assert df["number"].tolist() == list(range(32))
    assert df["state"].value_counts().to_dict() == {"COMPLETE": 27, "PRUNED": 3, "FAIL": 2}
    # references are named by their tag, search trials by number
    refs = df[df["is_reference"]]
    assert refs["name"].tolist() == ["b0", "b0-w0.5"] and refs["reference"].tolist() == ["b0", "b0-w0.5"]
    assert df.loc[5, "name"] == "#5"
    # arch strings parse, MACs/params come from the user attrs
    t = study.trials[5]
    assert str(parse_arch(df.loc[5, "arch"])) == t.user_attrs["arch"]
    assert df.loc[5, "macs"] == t.user_attrs["macs"] and df.loc[5, "params"] == t.user_attrs["params"]
    # per-stage choices are columns; pruned/failed trials never count as full budget
    assert {"s1_kernel", "s5_se", "s7_repeats"} <= set(choice_columns(df))
    assert df.loc[df["state"] != "COMPLETE", "full_budget"].eq(False).all()
    assert df.loc[df["state"] == "FAIL", "fail_reason"].str.contains("non-finite").all()
    assert df.attrs["study_name"] == "fake" and df.attrs["objective"] == "multi"
    assert df.attrs["config"]["data"]["dataset"] == "fashion_mnist"
    assert (df["duration"] >= 0).all()


def test_every_source_kind_loads_the_same_study(study_dir: Path, tmp_path: Path) -> None:
    db = study_dir / "study.db"
    a = study_frame(study_dir)
    b = study_frame(db)
    c = study_frame(f"sqlite:///{db}", "fake")
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(a.drop(columns=[]), c)
    # journal storage
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    journal = tmp_path / "j.log"
    make_study(JournalStorage(JournalFileBackend(str(journal))), name="jstudy", n=8)
    j = study_frame(journal)
    assert len(j) == 10 and j.attrs["study_name"] == "jstudy"
    assert study_frame(f"journal:{journal}")["arch"].tolist() == j["arch"].tolist()  # the search's spelling


def test_bad_sources_are_one_line_config_errors(tmp_path: Path, study_dir: Path) -> None:
    with pytest.raises(ConfigError, match="storage: 'nope' is not"):
        resolve_source("nope")
    assert not Path("nope").exists()
    with pytest.raises(ConfigError, match=r"SQLite file .* does not exist"):
        resolve_source(f"sqlite:///{tmp_path / 'missing.db'}")
    assert not (tmp_path / "missing.db").exists()  # Optuna must not have created it
    with pytest.raises(ConfigError, match=r"study_name: no study 'other'.*\['fake'\]"):
        resolve_source(study_dir, "other")
    # two studies in one file: the folder name picks, otherwise the user must choose
    db = f"sqlite:///{study_dir / 'study.db'}"
    optuna.create_study(storage=db, study_name="second")
    assert resolve_source(study_dir).study_name == "fake"
    import shutil

    for suffix in ("", "-wal", "-shm"):  # the database is in WAL mode: recent commits live in -wal
        if (study_dir / f"study.db{suffix}").exists():
            shutil.copy(study_dir / f"study.db{suffix}", tmp_path / f"copy.db{suffix}")
    with pytest.raises(ConfigError, match="holds several studies"):
        resolve_source(tmp_path / "copy.db")


def test_csv_and_parquet_round_trip(study_dir: Path, tmp_path: Path) -> None:
    df = study_frame(study_dir)
    csv = export_frame(df, tmp_path / "out" / "trials.csv")
    pq = export_frame(df, tmp_path / "out" / "trials.parquet")
    back_csv = pd.read_csv(csv)
    back_pq = pd.read_parquet(pq)
    for back in (back_csv, back_pq):
        assert back["number"].tolist() == df["number"].tolist()
        assert back["arch"].tolist()[2:] == df["arch"].tolist()[2:]
        assert back["macs"].tolist() == df["macs"].tolist()
        assert back["s5_se"].astype(str).tolist() == df["s5_se"].astype(str).tolist()
    with pytest.raises(ConfigError, match=r"allowed: \.csv, \.parquet"):
        export_frame(df, tmp_path / "x.xlsx")


def test_constraints_mark_infeasible_trials(tmp_path: Path) -> None:
    from nas_harness.results import rank_trials

    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'b.db'}", study_name="budget")
    study.set_user_attr("objective", "budget")
    for i, (acc, over) in enumerate([(0.9, 5.0), (0.8, -1.0), (0.7, 0.0)]):
        study.add_trial(optuna.trial.create_trial(
            value=acc, system_attrs={"constraints": [over]},
            user_attrs={"arch": ARCH, "macs": 10.0 + i, "val_acc": acc, "full_budget": True}))
    df = study_frame(tmp_path / "b.db")
    assert df["feasible"].tolist() == [False, True, True]  # feasible when every constraint <= 0
    assert rank_trials(df)["number"].tolist() == [1, 2]  # the over-budget trial is never exported

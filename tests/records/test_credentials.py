"""Issue #21: no password of a storage URL reaches the console, the stored study settings, a report, an error
line or Ray's ``tuner.pkl``, whatever its form: in the user info (also with a space or a raw '@'), in the
query string (``?password=``), percent-encoded."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from helpers.studies import tiny_dict, to_toml

from nas_harness.cli import main
from nas_harness.records import redact, scrub

FORMS = [  # (url, the secret)
    ("postgresql://nas:s3cretPw@127.0.0.1:1/nas", "s3cretPw"),
    ("postgresql://nas@127.0.0.1:1/nas?password=s3cretPw", "s3cretPw"),
    ("postgresql://nas@127.0.0.1:1/nas?sslmode=disable&password=s3cretPw&x=1", "s3cretPw"),
    ("postgresql://nas:my s3cret pw@127.0.0.1:1/nas", "my s3cret pw"),
    ("postgresql://nas:hunter2@prod@127.0.0.1:1/nas", "hunter2@prod"),
    ("postgresql://nas:a%40b%20c-Xyz@127.0.0.1:1/nas", "a@b c-Xyz"),
    ("mysql://nas:s3cret/Pw:x@127.0.0.1:1/nas", "s3cret/Pw:x"),
    ("postgresql+psycopg2://nas@127.0.0.1:1/nas?sslpassword=s3cretPw", "s3cretPw"),
]


def pieces(secret: str) -> list[str]:
    """The secret and every part of it a driver could show on its own (split at '@', spaces)."""
    from urllib.parse import quote

    out = {secret, quote(secret, safe="")}
    for sep in ("@", " "):
        out |= {p for p in secret.split(sep) if len(p) >= 3}
    return sorted(out)


@pytest.mark.parametrize(("url", "secret"), FORMS)
def test_redact_and_scrub_hide_every_form_of_password(url: str, secret: str) -> None:
    shown = redact(url)
    assert "***" in shown and "127.0.0.1" in shown
    for piece in pieces(secret):
        assert piece not in shown, (piece, shown)
    text = f"connection to {url} failed: could not translate host name {secret.split('@')[-1]!r}; user nas"
    for piece in pieces(secret):
        assert piece not in scrub(text, url), piece


def test_urls_without_a_password_are_shown_as_they_are() -> None:
    for url in ("postgresql://nas@db-host/nas", "sqlite:///results/x/study.db", "journal:results/x.log",
                "postgresql://db-host:5432/nas?sslmode=require", "mysql://u@h/db?charset=utf8"):
        assert redact(url) == url


@pytest.mark.parametrize(("url", "secret"), FORMS)
def test_error_lines_of_search_and_report_name_the_storage_without_the_password(
        url: str, secret: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("psycopg2")
    if url.startswith("mysql"):
        pytest.importorskip("pymysql")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.toml").write_text(to_toml(tiny_dict(tmp_path)))
    for argv in (["search", "s.toml", "--check", "--storage", url], ["report", url]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1, err
        for piece in pieces(secret):
            assert piece not in err, (piece, err)
    assert not (tmp_path / "results").exists()


def test_a_search_on_postgresql_with_the_password_in_the_query_string_leaks_it_nowhere(
        tmp_path: Path, postgres, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    from helpers.postgres import PASSWORD

    url = postgres.create_database("query_pw").replace(f":{PASSWORD}@", "@") + f"?password={PASSWORD}"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.toml").write_text(to_toml(tiny_dict(tmp_path, run={"n_trials": 1})))
    assert main(["search", "s.toml", "--storage", url]) == 0
    assert main(["report", url, "--out", str(tmp_path / "rep"), "--no-figures"]) == 0
    out = capsys.readouterr()
    assert PASSWORD not in out.out + out.err and "password=***" in out.out + out.err
    from nas_harness.records import open_storage

    study = optuna.load_study(study_name="tiny", storage=open_storage(url, create=False))
    assert PASSWORD not in repr(study.user_attrs)
    assert PASSWORD not in repr(study._storage.get_study_system_attrs(study._study_id))
    assert study.user_attrs["config"]["run"]["storage"].endswith("password=***")
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert PASSWORD.encode() not in f.read_bytes(), f


@pytest.mark.ray
@pytest.mark.slow
def test_a_ray_search_writes_no_password_into_tunes_files(tmp_path: Path, postgres, ray_local: None) -> None:
    """Tune pickles its searcher and callbacks into results/<study>/ray/tuner.pkl: they are written as empty
    ones, so the storage (and its URL with the password) never reaches the file."""
    from helpers.postgres import PASSWORD

    from nas_harness.study.config import validate
    from nas_harness.study.search import run_search

    url = postgres.create_database("ray_pw")
    cfg = validate(tiny_dict(tmp_path, sampler={"kind": "random"}, run={"n_trials": 1, "backend": "ray",
                                                                         "storage": url},
                             ray={"cpus_per_trial": 1.0}))
    assert run_search(cfg).n_complete == 1
    files = [f for f in (cfg.study_dir / "ray").rglob("*") if f.is_file()]
    assert any(f.name == "tuner.pkl" for f in files)
    for f in files:
        assert PASSWORD.encode() not in f.read_bytes(), f

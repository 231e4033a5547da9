"""Issue #21, database servers: a PostgreSQL server (or proxy) that accepts the connection and the login and then
never answers a query is one line after ``ANSWER_TIMEOUT_S`` (tested against a real listener that completes
PostgreSQL's start-up handshake and then goes silent), and a database of another application (its own tables,
no Optuna tables) is refused before Optuna adds its tables, as a SQLite file of another application is."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nas_harness.errors import ConfigError
from nas_harness.records import _storage, check_reachable, open_storage

pytestmark = pytest.mark.timeout(120)

_SSL_REQUEST, _GSSENC_REQUEST = 80877103, 80877104


def _message(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("!i", len(body) + 4) + body


def _read(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def _serve_then_go_silent(conn: socket.socket, stop: threading.Event) -> None:
    """PostgreSQL's start-up as a server speaks it (protocol 3.0): no SSL/GSS, the login accepted without a
    password, the usual parameters, the backend key and ReadyForQuery; then every query is read and never
    answered."""
    try:
        while True:
            (length,) = struct.unpack("!i", _read(conn, 4))
            body = _read(conn, length - 4)
            if length == 8 and struct.unpack("!i", body)[0] in (_SSL_REQUEST, _GSSENC_REQUEST):
                conn.sendall(b"N")  # no encryption: the client goes on in the clear
                continue
            break  # the StartupMessage
        params = {"server_version": "16.4", "server_encoding": "UTF8", "client_encoding": "UTF8",
                  "DateStyle": "ISO, MDY", "integer_datetimes": "on", "standard_conforming_strings": "on",
                  "TimeZone": "UTC", "IntervalStyle": "postgres", "is_superuser": "off",
                  "session_authorization": "nas"}
        out = _message(b"R", struct.pack("!i", 0))  # AuthenticationOk
        for k, v in params.items():
            out += _message(b"S", k.encode() + b"\0" + v.encode() + b"\0")
        out += _message(b"K", struct.pack("!ii", 4242, 1234))
        out += _message(b"Z", b"I")  # ReadyForQuery, idle
        conn.sendall(out)
        conn.settimeout(0.2)
        while not stop.is_set():  # the silence: queries arrive, nothing goes back
            try:
                if not conn.recv(65536):
                    return
            except TimeoutError:
                continue
    except (OSError, ConnectionError):
        return


@pytest.fixture
def silent_after_login() -> Iterator[tuple[int, list[int]]]:
    """A local port speaking PostgreSQL's start-up handshake, then silent; yields (port, logins so far)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    stop = threading.Event()
    logins: list[int] = []
    threads: list[threading.Thread] = []

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            logins.append(1)
            t = threading.Thread(target=_serve_then_go_silent, args=(conn, stop), daemon=True)
            t.start()
            threads.append(t)

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    yield server.getsockname()[1], logins
    stop.set()
    acceptor.join()
    for t in threads:
        t.join(2)
    server.close()


@pytest.mark.parametrize("opener", ["check_reachable", "writer", "reader"])
def test_a_server_that_logs_in_and_never_answers_is_one_line_after_the_answer_timeout(
        silent_after_login: tuple[int, list[int]], opener: str, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("psycopg2")
    port, logins = silent_after_login
    monkeypatch.setattr(_storage, "ANSWER_TIMEOUT_S", 1)
    url = f"postgresql://nas:s3cret@127.0.0.1:{port}/nas"
    t0 = time.monotonic()
    with pytest.raises(ConfigError) as info:
        if opener == "check_reachable":
            check_reachable(url)
        else:
            open_storage(url, create=opener == "writer")
    took = time.monotonic() - t0
    line = str(info.value)
    assert "\n" not in line and "s3cret" not in line and "***" in line, line
    assert "did not answer a query within 1 s" in line and line.startswith("run.storage: "), line
    assert logins, "the probe never reached the listener"
    assert took < 60, took  # bounded (generously: the bound is 1 s, a loaded machine may take longer)


def test_search_and_report_on_a_silent_server_are_one_line_and_exit_2(
        silent_after_login: tuple[int, list[int]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("psycopg2")
    from helpers.studies import tiny_dict, to_toml

    from nas_harness.cli import main

    port, _ = silent_after_login
    monkeypatch.setattr(_storage, "ANSWER_TIMEOUT_S", 1)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.toml").write_text(to_toml(tiny_dict(tmp_path, name="silent")))
    url = f"postgresql://nas:s3cret@127.0.0.1:{port}/nas"
    for argv in (["search", "s.toml", "--storage", url], ["search", "s.toml", "--check", "--storage", url],
                 ["report", url, "--study", "silent"]):
        assert main(argv) == 2, argv
        err = [ln for ln in capsys.readouterr().err.strip().splitlines() if ln.strip()]
        assert len(err) == 1 and "did not answer a query" in err[0] and "s3cret" not in err[0], (argv, err)
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").rglob("*.*"))


def test_the_answer_bound_is_what_the_readme_states() -> None:
    readme = " ".join((Path(__file__).resolve().parents[2] / "README.md").read_text().split())
    assert f"{_storage.CONNECT_TIMEOUT_S} s to accept and answer the login" in readme
    assert f"{_storage.ANSWER_TIMEOUT_S} s more to answer its first query" in readme


# ------------------------------------------------------------------------------ another application's database

def _psql(postgres, db: str, sql: str) -> None:
    import subprocess

    subprocess.run([*postgres.run_as, str(postgres.bin_dir / "psql"), "-h", str(postgres.data_dir), "-p",
                    str(postgres.port), "-U", "postgres", "-d", db, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql],
                   check=True, capture_output=True, timeout=60, cwd=postgres.data_dir.parent)


def _tables(url: str) -> set[str]:
    import sqlalchemy

    engine = sqlalchemy.create_engine(_storage.sqlalchemy_url(url))
    try:
        with engine.connect() as con:
            return set(sqlalchemy.inspect(con).get_table_names())
    finally:
        engine.dispose()


@pytest.mark.parametrize("app_sql", [
    "CREATE TABLE users (id integer, name text); INSERT INTO users VALUES (1, 'ann')",
    "CREATE TABLE studies (id integer, owner text)",  # its own 'studies' table: still not Optuna's
], ids=["users-table", "own-studies-table"])
def test_another_applications_postgresql_database_is_refused_and_left_alone(
        postgres, app_sql: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture) -> None:
    from helpers.postgres import PASSWORD
    from helpers.studies import tiny_dict, to_toml

    from nas_harness.cli import main

    db = "app_" + ("users" if "users" in app_sql else "studies")
    url = postgres.create_database(db)
    _psql(postgres, db, f"SET ROLE nas; {app_sql}")
    before = _tables(url)
    for opener in ("check_reachable", "writer", "reader"):
        with pytest.raises(ConfigError, match="another application's database") as info:
            if opener == "check_reachable":
                check_reachable(url)
            else:
                open_storage(url, create=opener == "writer")
        assert "\n" not in str(info.value) and PASSWORD not in str(info.value)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.toml").write_text(to_toml(tiny_dict(tmp_path, name="app")))
    assert main(["search", "s.toml", "--storage", url]) == 2
    err = [ln for ln in capsys.readouterr().err.strip().splitlines() if ln.strip()]
    assert len(err) == 1 and "another application's database" in err[0] and PASSWORD not in err[0], err
    assert _tables(url) == before  # no Optuna table added


def test_an_empty_or_optuna_postgresql_database_is_accepted(postgres) -> None:
    import optuna

    url = postgres.create_database("app_empty")
    storage = open_storage(url)  # empty: Optuna makes its tables
    optuna.create_study(storage=storage, study_name="x")
    del storage
    assert "version_info" in _tables(url)
    check_reachable(url)
    open_storage(url, create=False)

"""Issue #21: every network wait is bounded.  A database port that accepts a connection and never answers is
one line naming the storage (without its password) after ``CONNECT_TIMEOUT_S``; a Ray address whose port is
dead or silent is one line after ``RAY_PROBE_TIMEOUT_S``."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from nas_harness.errors import ConfigError
from nas_harness.records import _storage, check_reachable, open_storage


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A local port that accepts every connection and never sends a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield server.getsockname()[1]
    stop.set()
    t.join()
    for s in held:
        s.close()
    server.close()


@pytest.fixture
def dead_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    return port


@pytest.mark.parametrize("opener", ["check_reachable", "writer", "reader"])
def test_a_postgres_port_that_never_answers_is_one_line_after_the_connect_timeout(
        silent_port: int, opener: str, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("psycopg2")
    monkeypatch.setattr(_storage, "CONNECT_TIMEOUT_S", 2)  # libpq's smallest
    url = f"postgresql://nas:s3cret@127.0.0.1:{silent_port}/nas"
    with pytest.raises(ConfigError) as info:
        if opener == "check_reachable":
            check_reachable(url)
        else:
            open_storage(url, create=opener == "writer")
    line = str(info.value)
    assert "\n" not in line and "s3cret" not in line and "***" in line, line
    assert "timeout" in line.lower(), line


def test_every_database_server_url_gets_bounded_connects() -> None:
    for url in ("postgresql://u@h/db", "postgresql+psycopg2://u@h/db", "postgres://u@h/db", "mysql://u@h/db"):
        assert _storage.connect_args(url)["connect_timeout"] == _storage.CONNECT_TIMEOUT_S
    assert _storage.connect_args("sqlite:///x.db") == {}


def test_a_dead_or_silent_ray_address_is_refused_in_one_line(dead_port: int, silent_port: int) -> None:
    from nas_harness.backends.ray import probe_address

    with pytest.raises(ConfigError, match=rf"ray.address: cannot reach the Ray head at '127.0.0.1:{dead_port}'"):
        probe_address(f"127.0.0.1:{dead_port}")
    with pytest.raises(ConfigError, match=r"ray\.address"):
        probe_address(f"ray://127.0.0.1:{dead_port}")
    probe_address(f"127.0.0.1:{silent_port}")  # a listening port passes the probe; Ray takes it from there
    probe_address("auto")


def test_search_check_with_a_dead_ray_address_is_one_line(dead_port: int, tmp_path, monkeypatch,
                                                          capsys) -> None:
    from helpers.studies import tiny_dict, to_toml

    from nas_harness.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.toml").write_text(to_toml(tiny_dict(tmp_path, run={"backend": "ray"})))
    assert main(["search", "s.toml", "--check", "--ray-address", f"127.0.0.1:{dead_port}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ray.address" in err[0], err

"""Opening a study storage, keeping its credentials out of every output, and one lock per storage.

Storage URLs: ``sqlite:///path.db`` (one machine; WAL mode), ``postgresql://user@host/db`` (several
machines; the driver comes with ``pip install 'nas-harness[postgres]'``), ``mysql://...``, or
``journal:path.log`` (Optuna's journal file; one machine or a shared disk).

Credentials: :func:`redact` replaces the password of a URL with ``***``; every URL the harness prints,
stores in a study or writes into a report goes through it, and error messages of the database layer are
scrubbed of the password as well (:func:`scrub`).  Prefer ``postgresql://user@host/db`` with the password in
``PGPASSWORD`` or ``~/.pgpass``: then no credential is in a study file at all.

:class:`StorageLock` is a cross-process mutex scoped to one storage: an ``flock`` beside a SQLite or journal
file (all processes on one machine), ``pg_advisory_lock`` on PostgreSQL and ``GET_LOCK`` on MySQL (any number
of machines).  The search holds it only while it counts trials and creates the next one.
"""

from __future__ import annotations

import functools
import hashlib
import re
import threading
import time
import warnings
from pathlib import Path
from typing import Any

from nas_harness.errors import ConfigError

_URL_PASSWORD = re.compile(r"^(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)(?P<pw>[^@\s]*)(?P<tail>@.*)$")
_SQLITE_TIMEOUT_S = 60


def redact(url: str) -> str:
    """``postgresql://user:secret@host/db`` -> ``postgresql://user:***@host/db`` (anything else unchanged)."""
    m = _URL_PASSWORD.match(url or "")
    return f"{m['head']}***{m['tail']}" if m and m["pw"] else url


def _password(url: str) -> str | None:
    m = _URL_PASSWORD.match(url or "")
    if not (m and m["pw"]):
        return None
    from urllib.parse import unquote

    return unquote(m["pw"])


def scrub(text: str, url: str) -> str:
    """``text`` with the URL's password (raw and percent-decoded) replaced by ``***``."""
    pw = _password(url)
    raw = _URL_PASSWORD.match(url or "")
    for secret in {pw, raw["pw"] if raw else None} - {None, ""}:
        text = text.replace(secret, "***")  # type: ignore[arg-type]
    return text


def sqlalchemy_url(url: str) -> str:
    """The URL SQLAlchemy needs: ``postgresql://`` gets an installed driver (psycopg2, else psycopg 3)."""
    scheme, sep, rest = url.partition("://")
    if scheme in ("postgresql", "postgres"):
        import importlib.util

        for module, dialect in (("psycopg2", "postgresql+psycopg2"), ("psycopg", "postgresql+psycopg")):
            if importlib.util.find_spec(module) is not None:
                return f"{dialect}{sep}{rest}"
        raise ConfigError("run.storage: a PostgreSQL URL needs a driver: pip install 'nas-harness[postgres]' "
                          "(psycopg2-binary)")
    if scheme == "mysql":
        import importlib.util

        if importlib.util.find_spec("pymysql") is not None and importlib.util.find_spec("MySQLdb") is None:
            return f"mysql+pymysql{sep}{rest}"
    return url


def journal_path(url: str) -> Path | None:
    return Path(url[len("journal:"):].removeprefix("//")) if url.startswith("journal:") else None


def sqlite_path(url: str) -> Path | None:
    return Path(url[len("sqlite:///"):]) if url.startswith("sqlite:///") else None


def _sqlite_connect(path: str) -> Any:
    """SQLite connection in WAL mode with synchronous=NORMAL: a commit no longer waits for fsync (~17 ms
    each on a busy disk, ~70 per trial), and a committed trial still survives SIGKILL of the process
    (only an OS crash or power loss could drop the last commits)."""
    import sqlite3

    con = sqlite3.connect(path, timeout=_SQLITE_TIMEOUT_S, check_same_thread=False)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    return con


def check_writable(url: str) -> None:
    """Refuse, before anything is created, a SQLite/journal file whose folder cannot be made or written."""
    path = sqlite_path(url) or journal_path(url)
    if path is None:
        return
    import os

    folder = path.parent if str(path.parent) else Path(".")
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"run.storage: {str(existing)!r} is not a folder; cannot create {str(path)!r}")
    target = path if path.exists() else existing
    if not os.access(target, os.W_OK):
        raise ConfigError(f"run.storage: {str(target)!r} is not writable; choose another --storage or "
                          "--results-dir")


def open_storage(url: str) -> Any:
    """An Optuna storage for a URL (RDB or ``journal:<file>``); a bad URL or unreachable database is a
    one-line ConfigError without the password."""
    import optuna
    from optuna.storages import JournalStorage, RDBStorage
    from optuna.storages.journal import JournalFileBackend

    jpath = journal_path(url)
    try:
        if jpath is not None:
            check_writable(url)
            jpath.parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(str(jpath)))
        kwargs: dict[str, Any] = {}
        spath = sqlite_path(url)
        if spath is not None:
            check_writable(url)
            spath.parent.mkdir(parents=True, exist_ok=True)
            _check_sqlite_file(spath)
            kwargs["engine_kwargs"] = {"creator": functools.partial(_sqlite_connect, str(spath))}
        return RDBStorage(sqlalchemy_url(url), **kwargs)
    except ConfigError:
        raise
    except (ImportError, optuna.exceptions.StorageInternalError, ValueError, OSError, RuntimeError) as exc:
        detail = scrub(" ".join(str(exc).split()), url)[:300]
        raise ConfigError(f"run.storage: cannot open {redact(url)}: {type(exc).__name__}: {detail}") from None
    except Exception as exc:  # sqlalchemy.exc.* (a database that is not one, an unreachable server)
        detail = scrub(" ".join(str(exc).split()), url)[:300]
        raise ConfigError(f"run.storage: cannot open {redact(url)}: {type(exc).__name__}: {detail}") from None


_SQLITE_MAGIC = b"SQLite format 3\x00"


def _check_sqlite_file(path: Path) -> None:
    """A file that exists but is not a SQLite database (truncated, garbage) is named, not tracebacked."""
    if path.exists() and path.stat().st_size > 0:
        with path.open("rb") as f:
            head = f.read(16)
        if head != _SQLITE_MAGIC:
            raise ConfigError(f"storage {str(path)!r} is not a SQLite database (damaged or another kind of file); "
                              "move it away or choose another --storage")


class StorageLock:
    """Cross-process mutex for one storage (see the module docstring); re-entrant within a thread."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._local = threading.RLock()
        self._depth = 0
        self._handle: Any = None
        file = sqlite_path(url) or journal_path(url)
        self._file = Path(f"{file}.nas-lock") if file is not None else None
        scheme = url.partition("://")[0].split("+")[0]
        self._kind = "file" if self._file is not None else scheme if scheme in ("postgresql", "postgres",
                                                                               "mysql") else "local"
        if self._kind == "local":
            warnings.warn(f"storage {redact(url)}: no cross-process lock for this kind of storage; several "
                          "workers on one study may overshoot run.n_trials", RuntimeWarning, stacklevel=2)
        self._engine: Any = None
        self._key = int.from_bytes(hashlib.sha1(url.encode()).digest()[:8], "big", signed=True)

    def __getstate__(self) -> dict[str, Any]:  # pickled with a Tune searcher: re-created, never held
        return {"url": self.url}

    def __setstate__(self, state: dict[str, Any]) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            self.__init__(state["url"])  # type: ignore[misc]

    def __enter__(self) -> StorageLock:
        self._local.acquire()
        if self._depth == 0:
            try:
                self._acquire()
            except BaseException:
                self._local.release()
                raise
        self._depth += 1
        return self

    def __exit__(self, *exc: Any) -> None:
        self._depth -= 1
        try:
            if self._depth == 0:
                self._release()
        finally:
            self._local.release()

    def _acquire(self) -> None:
        if self._kind == "file":
            import fcntl

            assert self._file is not None
            self._file.parent.mkdir(parents=True, exist_ok=True)
            fh = open(self._file, "a+")  # noqa: SIM115 - held until release
            fcntl.flock(fh, fcntl.LOCK_EX)
            self._handle = fh
        elif self._kind in ("postgresql", "postgres", "mysql"):
            import sqlalchemy

            if self._engine is None:
                self._engine = sqlalchemy.create_engine(sqlalchemy_url(self.url), poolclass=sqlalchemy.pool.NullPool)
            con = self._engine.connect()
            if self._kind == "mysql":
                con.execute(sqlalchemy.text("SELECT GET_LOCK(:k, 3600)"), {"k": f"nas-harness:{self._key}"})
            else:
                con.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": self._key})
            self._handle = con

    def _release(self) -> None:
        handle, self._handle = self._handle, None
        if handle is None:
            return
        if self._kind == "file":
            import fcntl

            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()
            return
        import sqlalchemy

        try:
            if self._kind == "mysql":
                handle.execute(sqlalchemy.text("SELECT RELEASE_LOCK(:k)"), {"k": f"nas-harness:{self._key}"})
            else:
                handle.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
        finally:
            handle.close()  # a closed session releases its advisory locks anyway


def wait(seconds: float) -> None:
    """Sleep (a seam for tests)."""
    time.sleep(seconds)

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

from nas_harness._config import redact_url, scrub_url
from nas_harness.errors import ConfigError, environment_error, os_reason, read_only_file_system

_SQLITE_TIMEOUT_S = 60
#: Seconds a database server gets to accept a connection and answer the login (libpq's and MySQL's
#: ``connect_timeout``): a host that drops packets or a port that accepts and never answers is one line after it.
CONNECT_TIMEOUT_S = 10
#: A PostgreSQL server whose host is gone after login is noticed within about this many seconds (TCP keepalives
#: and ``tcp_user_timeout``): no query then waits for ever.
PG_DEAD_PEER_S = 60
#: Seconds a database server gets, after the login, to answer the probe that lists its tables (before any work
#: and before anything is written): a server or proxy that accepts the connection and the login and then never
#: answers a query is one line after it instead of a hang.
ANSWER_TIMEOUT_S = 10


def connect_args(url: str) -> dict[str, Any]:
    """The DB-API ``connect_args`` that bound every network wait of a database server URL (see
    :data:`CONNECT_TIMEOUT_S`, :data:`PG_DEAD_PEER_S`); nothing for SQLite."""
    scheme = (url or "").partition("://")[0].split("+")[0].lower()
    if scheme in ("postgresql", "postgres"):
        return {"connect_timeout": CONNECT_TIMEOUT_S, "keepalives": 1, "keepalives_idle": PG_DEAD_PEER_S // 3,
                "keepalives_interval": PG_DEAD_PEER_S // 12, "keepalives_count": 4,
                "tcp_user_timeout": PG_DEAD_PEER_S * 1000}
    if scheme == "mysql":
        return {"connect_timeout": CONNECT_TIMEOUT_S}
    return {}


def redact(url: str) -> str:
    """``url`` with every password replaced by ``***``: the user info's (``postgresql://user:secret@host/db``,
    also one holding a raw '@' or a space) and the query string's (``?password=secret``, ``&sslpassword=``)."""
    return redact_url(url)


def scrub(text: str, url: str) -> str:
    """``text`` with every password of ``url`` (raw, percent-decoded, and the pieces a driver makes of one with a
    raw '@') replaced by ``***``, and any query-string password in it redacted."""
    return scrub_url(text, url)


def in_memory(url: str) -> bool:
    """True for a SQLite URL that keeps nothing once the process ends (``sqlite://``, ``sqlite:///:memory:``,
    ``?mode=memory``): every trial would be trained and lost."""
    scheme, sep, rest = (url or "").partition("://")
    if not sep or scheme.split("+")[0].lower() != "sqlite":
        return False
    db, _, query = rest.removeprefix("/").partition("?")
    return db.strip() in ("", ":memory:") or db.startswith("file::memory:") or "mode=memory" in query


MEMORY_REFUSED = ("keeps nothing (an in-memory SQLite database is lost when the process ends); use "
                  "sqlite:///path.db, journal:path.log or a database server")


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


def check_reachable(url: str, what: str = "run.storage") -> None:
    """Refuse, without creating or writing anything, a storage the run could not open: a SQLite/journal file
    that cannot be written (:func:`check_writable`), a database server that cannot be reached or refuses the
    login (a one-line ConfigError without the password)."""
    if in_memory(url):
        raise ConfigError(f"{what}: {redact(url)} {MEMORY_REFUSED}")
    if sqlite_path(url) is not None or journal_path(url) is not None:
        check_writable(url, what)
        spath, jpath = sqlite_path(url), journal_path(url)
        if spath is not None:
            _check_sqlite_file(spath, what)
        if jpath is not None:
            _check_journal_file(jpath, what)
        return
    probe_server(url, what)


def probe_server(url: str, what: str = "run.storage") -> set[str]:
    """Connect to the database server of ``url``, log in and list the tables of its default schema, all bounded:
    the connection and the login by :data:`CONNECT_TIMEOUT_S` (the driver's ``connect_timeout``), the answer by
    :data:`ANSWER_TIMEOUT_S` after the login (the probe runs in a daemon thread; one that does not come back is
    left behind).  Returns the table names; refuses, in one ConfigError line naming ``what`` and the URL without
    its password, a server that cannot be reached, refuses the login or never answers, and a database of another
    application (tables Optuna does not make: :data:`OPTUNA_TABLES`) before anything is added to it."""
    import sqlalchemy

    state: dict[str, Any] = {}

    def probe() -> None:
        try:
            engine = sqlalchemy.create_engine(sqlalchemy_url(url), connect_args=connect_args(url),
                                              poolclass=sqlalchemy.pool.NullPool)
            sqlalchemy.event.listen(engine, "connect", lambda *_: state.setdefault("login", time.monotonic()),
                                    insert=True)  # before the dialect's own first queries
            try:
                with engine.connect() as con:
                    state["tables"] = set(sqlalchemy.inspect(con).get_table_names())
            finally:
                engine.dispose()
        except BaseException as exc:  # no driver, no server, a refused login, a bad URL
            state["error"] = exc

    t = threading.Thread(target=probe, name="nas-harness-storage-probe", daemon=True)
    t0 = time.monotonic()
    t.start()
    while t.is_alive():
        t.join(0.05)
        login = state.get("login")
        if login is None and time.monotonic() - t0 > 3 * CONNECT_TIMEOUT_S + 5:  # the driver's bound, as a backstop
            raise ConfigError(f"{what}: {redact(url)} did not accept the connection and the login within "
                              f"{3 * CONNECT_TIMEOUT_S + 5} s; nothing was written")
        if login is not None and time.monotonic() - login > ANSWER_TIMEOUT_S:
            raise ConfigError(f"{what}: {redact(url)} accepted the connection and the login but did not answer a "
                              f"query within {ANSWER_TIMEOUT_S} s (a stuck server or proxy?); nothing was written")
    if "error" in state:
        exc = state["error"]
        if not isinstance(exc, Exception):
            raise exc
        raise ConfigError(_cannot_open(url, what, exc)) from None
    tables: set[str] = state["tables"]
    foreign = foreign_tables(tables)
    if foreign:
        raise ConfigError(f"{what}: {redact(url)} is another application's database (it has tables Optuna does not "
                          f"make: {', '.join(sorted(foreign)[:5])}); nothing was added to it; choose another "
                          "--storage")
    return tables


def _sqlite_reader(path: Path, what: str) -> Any:
    """A connection factory (no arguments) for readers (plot, report, export): read-only, so that reading a
    study changes nothing, not even an empty file.  A read-only SQLite connection to a WAL database creates
    ``<file>-wal`` and ``<file>-shm`` beside it when they are not there (and cannot remove them on close), so the
    file is read in place only while a writer's own WAL files are there already (:func:`_in_place`).  Otherwise
    (no writer has the file open, or a folder that cannot be written: an archive, a read-only mount, a copy
    without write permission) a file whose ``<file>-wal`` still holds trials (a search killed before its last
    checkpoint) is read from a private temporary copy of the database and its WAL (removed at exit), and one
    without is opened as immutable: nothing is created beside it.  A file without Optuna's tables is refused
    here, naming it."""
    import sqlite3

    wal = Path(f"{path}-wal")
    has_wal = wal.is_file() and wal.stat().st_size > 0
    if path.stat().st_size == 0 and not has_wal:
        raise ConfigError(f"{what}: {str(path)!r} holds no study (an empty file)")
    if _in_place(path):
        uri = f"{path.absolute().as_uri()}?mode=ro"
    elif has_wal:
        uri = f"{_private_copy(path, wal, what).as_uri()}?mode=ro"
    else:
        uri = f"{path.absolute().as_uri()}?immutable=1"

    def connect() -> Any:
        return sqlite3.connect(uri, uri=True, timeout=_SQLITE_TIMEOUT_S, check_same_thread=False)

    con = connect()
    try:
        has_studies = con.execute("select 1 from sqlite_master where type = 'table' and name = 'studies'").fetchone()
    finally:
        con.close()
    if not has_studies:
        raise ConfigError(f"{what}: {str(path)!r} holds no study (a SQLite file without Optuna's tables)")
    return connect


def _in_place(path: Path) -> bool:
    """Whether a reader may open the SQLite file ``path`` read-only in place (``mode=ro``, with SQLite's locks)
    without leaving anything behind: its folder and file can be written (SQLite's WAL index needs that), and
    either the file is in rollback-journal mode (a reader creates nothing) or its ``<file>-wal`` and
    ``<file>-shm`` exist already (a writer has the file open, or left them).  Otherwise a read-only connection
    would create both and leave them (empty) beside the study when it closes."""
    import os

    if not (os.access(path.parent, os.W_OK) and os.access(path, os.W_OK)) or read_only_file_system(path.parent):
        return False
    try:
        with open(path, "rb") as f:
            header = f.read(20)
    except OSError:
        return False
    wal_mode = len(header) == 20 and header[18:20] == b"\x02\x02"  # file format versions: 2 = WAL
    return not wal_mode or (Path(f"{path}-wal").is_file() and Path(f"{path}-shm").is_file())


def _private_copy(path: Path, wal: Path, what: str) -> Path:
    """``path`` and its WAL copied into a private temporary folder (0700, removed at exit): the copy is what
    a reader opens when the original's folder cannot hold SQLite's WAL index."""
    import atexit
    import shutil
    import tempfile

    from nas_harness._config import check_regular

    check_regular(wal, f"{what}: {str(wal)!r}")
    folder = Path(tempfile.mkdtemp(prefix="nas-harness-read-"))
    atexit.register(shutil.rmtree, folder, True)
    copy = folder / path.name
    try:
        shutil.copyfile(path, copy)
        shutil.copyfile(wal, Path(f"{copy}-wal"))
    except OSError as exc:
        raise ConfigError(f"{what}: {str(path)!r} keeps trials in its WAL file and cannot be read in place (a "
                          f"read-only folder); copying it to {str(folder)!r} failed ({os_reason(exc)}); "
                          "copy the folder somewhere writable and read that") from None
    return copy


def check_writable(url: str, what: str = "run.storage") -> None:
    """Refuse, before anything is created, a SQLite/journal file whose folder cannot be made or written (or a
    file name too long, a folder in the file's place, a read-only file system)."""
    path = sqlite_path(url) or journal_path(url)
    if path is None:
        return
    import os

    from nas_harness._config import check_dir_writable, check_regular

    folder = path.parent if str(path.parent) else Path(".")
    if path.name and len(os.fsencode(path.name)) > 255:
        raise ConfigError(f"{what}: the file name {path.name[:40]!r}... is {len(os.fsencode(path.name))} bytes; "
                          "at most 255")
    check_dir_writable(folder, what, target=path)
    check_regular(path, f"{what}: {str(path)!r}")
    lock = lock_file(path)
    check_regular(lock, f"{what}: lock file {str(lock)!r}")  # refused before the storage is made, not after
    if path.exists() and not os.access(path, os.W_OK):
        raise ConfigError(f"{what}: {str(path)!r} is not writable; choose another --storage or --results-dir")


def open_storage(url: str, what: str = "run.storage", *, create: bool = True) -> Any:
    """An Optuna storage for a URL (RDB or ``journal:<file>``); a bad URL, a damaged file or an unreachable
    database is a one-line ConfigError naming ``what`` and the storage, without the password.

    ``create=False`` (readers: plot, report, export): the file must exist; nothing is created.
    """
    from optuna.storages import JournalStorage

    if in_memory(url):
        raise ConfigError(f"{what}: {redact(url)} {MEMORY_REFUSED}")
    jpath = journal_path(url)
    spath = sqlite_path(url)
    try:
        if not create:
            from nas_harness._config import check_regular

            for path in (jpath, spath):
                if path is not None:
                    check_regular(path, f"{what}: {str(path)!r}")
                if path is not None and not path.is_file():
                    raise ConfigError(f"{what}: {str(path)!r} does not exist")
        if jpath is not None:
            if create:
                check_writable(url, what)
                jpath.parent.mkdir(parents=True, exist_ok=True)
            _check_journal_file(jpath, what, repair=create)
            return JournalStorage(_journal_backend(jpath, what))
        kwargs: dict[str, Any] = {}
        if spath is not None:
            if create:
                check_writable(url, what)
                spath.parent.mkdir(parents=True, exist_ok=True)
            _check_sqlite_file(spath, what)
            creator = functools.partial(_sqlite_connect, str(spath)) if create else _sqlite_reader(spath, what)
            kwargs["engine_kwargs"] = {"creator": creator}
        else:  # a database server: bounded, and never another application's database
            probe_server(url, what)
            if connect_args(url):
                kwargs["engine_kwargs"] = {"connect_args": connect_args(url)}
        if not create:
            kwargs["skip_table_creation"] = True  # a reader never writes, not even the schema
        return _rdb_storage(sqlalchemy_url(url), kwargs)
    except ConfigError:
        raise
    except Exception as exc:  # sqlalchemy.exc.* (a database that is not one, an unreachable server), OSError, ...
        env = environment_error(exc, spath or jpath)
        if env is not None:  # a full disk or read-only file system: the caller words it and says what is kept
            raise OSError(env.errno, env.strerror, env.filename or str(spath or jpath)) from None
        raise ConfigError(_cannot_open(url, what, exc)) from None


#: How the database words a schema another process is creating at the same moment (SQLite, PostgreSQL, MySQL).
_SCHEMA_RACE = ("unique constraint failed", "already exists", "duplicate key", "duplicate entry",
                "database is locked")
_SCHEMA_TRIES = 8


def _rdb_storage(url: str, kwargs: dict[str, Any]) -> Any:
    """Optuna's ``RDBStorage(url, **kwargs)``, tried again while another process creates the same schema: two
    workers started together on a new database both create the tables and insert the schema version, and the
    slower one meets the faster one's rows.  Once the other has committed, the schema is simply there."""
    from optuna.storages import RDBStorage

    for attempt in range(_SCHEMA_TRIES):
        try:
            return RDBStorage(url, **kwargs)
        except Exception as exc:
            if attempt == _SCHEMA_TRIES - 1 or not any(s in str(exc).lower() for s in _SCHEMA_RACE):
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")  # pragma: no cover


def _cannot_open(url: str, what: str, exc: BaseException) -> str:
    while type(exc).__name__ == "StorageInternalError" and exc.__cause__ is not None:  # Optuna's wrapper: the
        exc = exc.__cause__  # database's own reason is underneath
    detail = scrub(" ".join(str(exc).split()), url)
    detail = re.sub(r"\s*\(Background on this error at: [^)]*\)", "", detail)[:300]
    damaged = ("malformed", "not a database", "file is encrypted", "no such table", "JSONDecodeError",
               "UnicodeDecodeError", "Expecting value")
    hint = ("; the file is damaged or not an Optuna storage: move it away or choose another --storage"
            if any(d in f"{type(exc).__name__}: {detail}" for d in damaged) else "")
    return f"{what}: cannot open {redact(url)}: {type(exc).__name__}: {detail}{hint}"


_SQLITE_MAGIC = b"SQLite format 3\x00"


def _check_sqlite_file(path: Path, what: str = "run.storage") -> None:
    """A file that exists but is not a SQLite database (truncated, garbage) is named, not tracebacked."""
    from nas_harness._config import check_regular, open_regular

    check_regular(path, f"{what}: {str(path)!r}")
    for side in ("-wal", "-journal", "-shm"):  # SQLite opens these itself: a FIFO there would block it
        check_regular(Path(f"{path}{side}"), f"{what}: {str(path) + side!r}")
    if path.exists() and path.stat().st_size > 0:
        with open_regular(path, f"{what}: {str(path)!r}") as f:
            head = f.read(16)
        if head != _SQLITE_MAGIC:
            raise ConfigError(f"{what}: {str(path)!r} is not a SQLite database (damaged or another kind of file); "
                              "move it away or choose another --storage")
        foreign = _foreign_tables(path)
        if foreign:
            raise ConfigError(f"{what}: {str(path)!r} is another application's database (it has tables Optuna does "
                              f"not make: {', '.join(sorted(foreign)[:5])}); nothing was added to it; choose another "
                              "--storage")


#: The tables Optuna's RDB storage makes (SQLite's own ``sqlite_*`` tables aside).
OPTUNA_TABLES = frozenset({
    "alembic_version", "studies", "study_directions", "study_system_attributes", "study_user_attributes",
    "trial_heartbeats", "trial_intermediate_values", "trial_params", "trial_system_attributes",
    "trial_user_attributes", "trial_values", "trials", "version_info"})


def _foreign_tables(path: Path) -> set[str]:
    """Tables of the SQLite file ``path`` that are not Optuna's (read without writing anything;
    :func:`foreign_tables`)."""
    import sqlite3

    uri = f"{path.absolute().as_uri()}?{'mode=ro' if _in_place(path) else 'immutable=1'}"
    try:
        con = sqlite3.connect(uri, uri=True, timeout=_SQLITE_TIMEOUT_S)
        try:
            tables = {r[0] for r in con.execute("select name from sqlite_master where type = 'table' "
                                                "and name not like 'sqlite\\_%' escape '\\'")}
        finally:
            con.close()
    except sqlite3.Error:
        return set()  # damaged: Optuna's open names it
    return foreign_tables(tables)


def foreign_tables(tables: set[str]) -> set[str]:
    """Which of a database's ``tables`` Optuna does not make (:data:`OPTUNA_TABLES`); a database with a
    ``studies`` table but not Optuna's ``version_info`` counts as foreign as a whole.  Empty for an empty
    database and for Optuna's own."""
    extra = set(tables) - OPTUNA_TABLES
    if not extra and "version_info" not in tables and "studies" in tables:
        extra = {"studies (not Optuna's: no version_info)"}
    return extra


#: Largest journal file checked and opened (a journal of 10,000 trials is a few hundred MB).
MAX_JOURNAL_BYTES = 1 << 32


def _check_journal_file(path: Path, what: str = "run.storage", repair: bool = False) -> None:
    """An Optuna journal is UTF-8 JSON, one operation per line ending in a newline: a file that is not is named,
    not tracebacked.  A torn last line (no newline: a crash or a full disk mid-append) is harmless to a reader
    (Optuna skips it) but the next append would be written after the torn bytes and make the whole journal
    unreadable: a writer (``repair``) first keeps a copy of the file (``<file>.torn-<time>``), cuts the torn
    bytes off and says so in one warning line; all of this under Optuna's own journal lock, so that a line
    another worker is writing at that moment is never taken for a torn one."""
    from nas_harness._config import check_regular, open_regular

    label = f"{what}: {str(path)!r}"
    check_regular(path, label)
    check_journal_lock(path, what)
    if not path.is_file() or path.stat().st_size == 0:
        return
    if path.stat().st_size > MAX_JOURNAL_BYTES:
        raise ConfigError(f"{label}: {path.stat().st_size:,} bytes; a journal is at most {MAX_JOURNAL_BYTES:,}")
    import json

    end = 0  # offset just past the last complete line
    with open_regular(path, label) as f:
        for i, line in enumerate(f, start=1):
            if not line.endswith(b"\n"):
                break  # the torn tail: only ever the last piece of the file
            end += len(line)
            if not line.strip():
                continue
            try:
                op = json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, ValueError, RecursionError):
                op = None
            if not isinstance(op, dict) or "op_code" not in op:
                raise ConfigError(f"{label} is not a readable Optuna journal (line {i} is not a JSON operation; a "
                                  "write cut short in the middle of the file?); move it away or choose another "
                                  "--storage")
    if repair and end < path.stat().st_size:
        _cut_torn_tail(path, label)


def check_journal_lock(path: Path, what: str = "run.storage") -> None:
    """Refuse, in one line, a journal lock file (``<journal>.lock``) that is not Optuna's: Optuna's lock is a
    symlink to the journal, made and removed by the worker that holds it (one left by a killed worker is taken
    over after 30 s).  Anything else there (a FIFO, a device, a folder, a regular file, or a symlink to anything
    but the journal) would make every append wait 30 s and then rename or delete it."""
    import os
    import stat

    from optuna.storages.journal._file import LOCK_FILE_SUFFIX

    lock = Path(f"{path}{LOCK_FILE_SUFFIX}")
    label = f"{what}: journal lock {str(lock)!r}"
    try:
        mode = os.lstat(lock).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ConfigError(f"{label}: cannot read ({exc.strerror or exc})") from None
    if not stat.S_ISLNK(mode):
        from nas_harness._config import _file_kind

        kind = "a regular file" if stat.S_ISREG(mode) else _file_kind(mode)
        raise ConfigError(f"{label} is {kind}, not Optuna's lock (a symlink to the journal); move it away")
    try:
        same = path.exists() and os.path.samefile(lock, path)
    except FileNotFoundError:
        return  # released by its holder while we looked
    except OSError:
        same = False
    if not same and os.path.lexists(lock):
        target = os.readlink(lock) if os.path.islink(lock) else "?"
        raise ConfigError(f"{label} is a symlink to {target!r}, not to the journal (Optuna's lock); move it away")


def _cut_torn_tail(path: Path, label: str) -> None:
    from optuna.storages.journal import JournalFileSymlinkLock
    from optuna.storages.journal._file import get_lock_file

    with get_lock_file(JournalFileSymlinkLock(str(path))):
        _cut_torn_tail_locked(path, label)


def _cut_torn_tail_locked(path: Path, label: str) -> None:
    """With the journal's lock held: if the file does not end in a newline, keep a copy and cut the torn bytes."""
    import os
    import shutil

    with path.open("rb") as f:
        data = f.read()
    end = data.rfind(b"\n") + 1
    if end == len(data):
        return  # nothing torn (or another worker repaired it meanwhile)
    keep = path.with_name(f"{path.name}.torn-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
    shutil.copyfile(path, keep)
    with path.open("r+b") as f:
        f.truncate(end)
        f.flush()
        os.fsync(f.fileno())
    warnings.warn(f"{label} ended in a torn line ({len(data) - end:,} bytes, a write cut short); a copy of the "
                  f"whole file is kept as {str(keep)!r} and the torn bytes were removed from the journal",
                  RuntimeWarning, stacklevel=4)


def _journal_backend(path: Path, what: str) -> Any:
    """Optuna's journal file backend whose every append first makes sure the file ends in a newline (a worker
    killed mid-append on another process leaves torn bytes; appending after them would corrupt the journal)."""
    import os

    from optuna.storages.journal import JournalFileBackend
    from optuna.storages.journal._file import get_lock_file

    class _Backend(JournalFileBackend):
        def append_logs(self, logs: list[dict[str, Any]]) -> None:
            import json

            text = "\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n"
            with get_lock_file(self._lock):
                with open(self._file_path, "rb") as f:
                    size = f.seek(0, os.SEEK_END)
                    if size:
                        f.seek(size - 1)
                    torn = size > 0 and f.read(1) != b"\n"
                if torn:
                    _cut_torn_tail_locked(path, f"{what}: {str(path)!r}")
                with open(self._file_path, "ab") as f:
                    f.write(text.encode("utf-8"))
                    f.flush()
                    os.fsync(f.fileno())

    return _Backend(str(path))


def lock_file(path: Path) -> Path:
    """The file a :class:`StorageLock` of the SQLite or journal file ``path`` holds its ``flock`` on."""
    return Path(f"{path}.nas-lock")


class StorageLock:
    """Cross-process mutex for one storage (see the module docstring); re-entrant within a thread."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._local = threading.RLock()
        self._depth = 0
        self._handle: Any = None
        file = sqlite_path(url) or journal_path(url)
        self._file = lock_file(file) if file is not None else None
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
            from nas_harness._config import open_lock

            self._file.parent.mkdir(parents=True, exist_ok=True)
            fh = open_lock(self._file, f"run.storage: lock file {str(self._file)!r}")  # held until release
            fcntl.flock(fh, fcntl.LOCK_EX)
            self._handle = fh
        elif self._kind in ("postgresql", "postgres", "mysql"):
            import sqlalchemy

            if self._engine is None:
                self._engine = sqlalchemy.create_engine(sqlalchemy_url(self.url), poolclass=sqlalchemy.pool.NullPool,
                                                        connect_args=connect_args(self.url))
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


def finished_in_file(url: str, study: str, states: tuple[str, ...] = ("COMPLETE", "PRUNED")) -> str | None:
    """'N' (or 'at least N') trials of ``study`` in ``states`` read straight from a SQLite storage file without
    writing anything, for when even a read-only Optuna storage cannot be opened (a full disk); None when the file
    cannot be read.  ``immutable`` (the last resort) skips the WAL, hence "at least"."""
    import sqlite3

    path = sqlite_path(url)
    if path is None:
        return None
    query = (f"SELECT count(*) FROM trials t JOIN studies s ON s.study_id = t.study_id WHERE s.study_name = ? AND "
             f"t.state IN ({', '.join('?' for _ in states)})")
    for mode, exact in (("mode=ro", True), ("immutable=1", False)):
        try:
            con = sqlite3.connect(f"file:{path.resolve()}?{mode}", uri=True, timeout=5)
            try:
                (n,), = con.execute(query, (study, *states)).fetchall()
            finally:
                con.close()
        except (sqlite3.Error, OSError, ValueError):
            continue
        return str(n) if exact else f"at least {n}"
    return None

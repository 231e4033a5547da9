"""A throwaway PostgreSQL server for the test session (Debian's ``postgresql`` package, no mocks).

``start_postgres()`` runs ``initdb`` and ``pg_ctl`` on a free port (as the ``postgres`` user when the tests
run as root, since the server refuses to run as root), creates a password-protected user and database, and
returns a :class:`Postgres` with its URL; ``stop()`` shuts it down.  Returns None when no PostgreSQL binaries
are installed (tests then skip with that reason).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

USER, PASSWORD, DB = "nas", "s3cret-Pw_for-tests", "nas"


@dataclass
class Postgres:
    bin_dir: Path
    data_dir: Path
    port: int
    run_as: list[str]

    @property
    def url(self) -> str:
        return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{DB}"

    def create_database(self, name: str) -> str:
        """A fresh database owned by the test user; returns its URL."""
        self._psql(f"CREATE DATABASE {name} OWNER {USER}")
        return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{name}"

    def _psql(self, sql: str) -> None:
        subprocess.run([*self.run_as, str(self.bin_dir / "psql"), "-h", str(self.data_dir), "-p", str(self.port),
                        "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-q", "-c", sql], check=True,
                       capture_output=True, timeout=60, cwd=self.data_dir.parent)

    def stop(self) -> None:
        subprocess.run([*self.run_as, str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate",
                        "stop"], capture_output=True, timeout=60, cwd=self.data_dir.parent)
        shutil.rmtree(self.data_dir.parent, ignore_errors=True)


def find_bin_dir() -> Path | None:
    for cand in [shutil.which("initdb"), *sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)]:
        if cand and Path(cand).is_file():
            return Path(os.path.realpath(cand)).parent
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_postgres() -> Postgres | None:
    """Start a server in a new folder under the system temp dir (the ``postgres`` user cannot enter
    pytest's private temp folders); ``stop()`` and then removing ``data_dir.parent`` cleans up."""
    import tempfile

    bin_dir = find_bin_dir()
    if bin_dir is None:
        return None
    run_as: list[str] = []
    tmp = Path(tempfile.mkdtemp(prefix="nas-harness-pg-"))
    data = tmp / "pgdata"
    if os.geteuid() == 0:  # the server refuses root: run it as the package's system user
        runuser = shutil.which("runuser")
        if runuser is None:
            return None
        run_as = [runuser, "-u", "postgres", "--"]
        shutil.chown(tmp, "postgres")
    os.chmod(tmp, 0o755)
    pw_file = tmp / "pw"
    pw_file.write_text(PASSWORD + "\n")
    if run_as:
        shutil.chown(pw_file, "postgres")
    subprocess.run([*run_as, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth-local=trust",
                    "--auth-host=scram-sha-256", "-E", "UTF8", "--no-instructions"], check=True,
                   capture_output=True, timeout=300, cwd=tmp)
    port = _free_port()
    opts = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    subprocess.run([*run_as, str(bin_dir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(data / "log"),
                    "-w", "-t", "120", "start"], check=True, capture_output=True, timeout=180, cwd=tmp)
    pg = Postgres(bin_dir, data, port, run_as)
    pg._psql(f"CREATE USER {USER} PASSWORD '{PASSWORD}'")
    pg._psql(f"CREATE DATABASE {DB} OWNER {USER}")
    return pg

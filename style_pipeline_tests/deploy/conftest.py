"""A throw-away PostgreSQL server on 127.0.0.1 for the deployment tests (initdb + pg_ctl).

One cluster per session, in a fresh temp folder, with password (scram-sha-256) auth over
TCP so the tests use the password the instance is given; each test gets its own database.
PostgreSQL refuses to run as root, so under root the cluster belongs to the ``postgres``
user (Debian's package creates it; ``nobody`` otherwise) and its commands run as that user
through ``setpriv``. The tests skip only when no ``initdb`` is installed (CI installs
Debian's ``postgresql``, see .ci/run).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SUPERUSER = "dagster_test"
PASSWORD = "pg-test-password"  # a throw-away cluster on loopback only


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    username: str
    password: str

    def connect(self, db_name: str = "postgres"):
        import psycopg2

        return psycopg2.connect(
            host=self.host,
            port=self.port,
            user=self.username,
            password=self.password,
            dbname=db_name,
        )


@dataclass(frozen=True)
class PostgresDatabase:
    server: PostgresServer
    db_name: str

    def env(self) -> dict[str, str]:
        """The ``DAGSTER_PG_*`` variables docker/dagster.yaml reads."""
        return {
            "DAGSTER_PG_USERNAME": self.server.username,
            "DAGSTER_PG_PASSWORD": self.server.password,
            "DAGSTER_PG_HOST": self.server.host,
            "DAGSTER_PG_PORT": str(self.server.port),
            "DAGSTER_PG_DB": self.db_name,
        }

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        conn = self.server.connect(self.db_name)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall()
        finally:
            conn.close()


def find_pg_bin() -> Path | None:
    """The newest installed PostgreSQL's bin folder holding initdb, or None."""
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_as(user: pwd.struct_passwd | None):
    """A subprocess runner: as ``user`` through setpriv when given, else as ourselves."""

    def run(args: list[str]) -> subprocess.CompletedProcess:
        prefix = []
        if user is not None:
            prefix = [
                "setpriv",
                f"--reuid={user.pw_uid}",
                f"--regid={user.pw_gid}",
                "--clear-groups",
                "--",
            ]
        return subprocess.run(
            [*prefix, *args], capture_output=True, text=True, timeout=120, check=False
        )

    return run


def _cluster_user() -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    pytest.fail("running as root and neither a 'postgres' nor a 'nobody' user exists")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server on 127.0.0.1:<free port>, stopped and deleted at session end."""
    bin_dir = find_pg_bin()
    if bin_dir is None:
        pytest.skip(
            "no initdb found (PATH, /usr/lib/postgresql/*/bin): install Debian's "
            "'postgresql' package to run the Postgres instance tests"
        )
    user = _cluster_user()
    run = _run_as(user)
    # Under /tmp (world-traversable), not pytest's tmp_path (0700, root's): the server
    # user must reach its data folder.
    root = Path(tempfile.mkdtemp(prefix="style-pipeline-pg-"))
    data, pwfile, log = root / "data", root / "pwfile", root / "server.log"
    pwfile.write_text(PASSWORD + "\n")
    if user is not None:
        os.chown(root, user.pw_uid, user.pw_gid)
        os.chown(pwfile, user.pw_uid, user.pw_gid)
    pg_ctl = str(bin_dir / "pg_ctl")
    try:
        init = run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                SUPERUSER,
                f"--pwfile={pwfile}",
                "--auth-host=scram-sha-256",
                "--auth-local=scram-sha-256",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            ]
        )
        assert init.returncode == 0, f"initdb failed:\n{init.stdout}\n{init.stderr}"
        for _ in range(3):  # another process may take the free port before the server binds
            port = _free_port()
            options = f"-h 127.0.0.1 -p {port} -k {root} -c fsync=off -c full_page_writes=off"
            started = run([pg_ctl, "-D", str(data), "-l", str(log), "-o", options, "-w", "start"])
            if started.returncode == 0:
                break
        else:
            pytest.fail(f"pg_ctl start failed:\n{started.stderr}\n{_tail(log)}")
        yield PostgresServer("127.0.0.1", port, SUPERUSER, PASSWORD)
    finally:
        if (data / "postmaster.pid").exists():
            run([pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"])
        shutil.rmtree(root, ignore_errors=True)


def _tail(log: Path) -> str:
    try:
        return "\n".join(log.read_text().splitlines()[-20:])
    except OSError:
        return f"(no server log at {log})"


@pytest.fixture
def postgres_db(postgres_server) -> PostgresDatabase:
    """A new, empty database on the session's server for one test."""
    name = f"dagster_{uuid.uuid4().hex[:12]}"
    conn = postgres_server.connect()
    conn.autocommit = True  # CREATE DATABASE cannot run inside a transaction
    try:
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
    finally:
        conn.close()
    return PostgresDatabase(postgres_server, name)

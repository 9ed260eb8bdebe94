"""Test helpers: the local PostgreSQL, a real server on loopback, a small API client."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pymysql
import pytest
from psycopg import sql

PG_ADMIN_URL = os.environ.get("SIKKER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def postgres_available() -> bool:
    import psycopg

    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


def require_postgres() -> None:
    """Skip locally when PostgreSQL is down; fail in CI, where it must be there."""
    if postgres_available():
        return
    if IN_CI:
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL} and CI=true: start it")
    pytest.skip("PostgreSQL is not running")


@contextmanager
def fresh_pg_database() -> Iterator[str]:
    """A new, empty PostgreSQL database for one test (module); dropped afterwards."""
    import psycopg

    require_postgres()
    name = f"sikker_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``sikker server`` in a subprocess, on a loopback port."""

    def __init__(
        self, database: str, data_dir: Path, extra: list[str] | None = None, env: dict[str, str] | None = None
    ) -> None:
        self.database = database
        self.data_dir = data_dir
        self.extra = extra or []
        # One process unless a test asks for more (--workers or SIKKER_WORKERS): the default,
        # auto, would fork a worker per CPU and the tests share two of them.
        self.env = {"SIKKER_WORKERS": "1"} | (env or {})
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # What machines are told: the official SDKs accept only https:// or http://localhost.
        self.public_url = f"http://localhost:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data_dir / f"server-{self.port}.log"
        self.verify: Any = True  # an ssl.SSLContext for servers with a test certificate

    def start(self) -> Server:
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        cmd = [
            sys.executable,
            "-m",
            "sikker",
            "server",
            "--listen",
            f"127.0.0.1:{self.port}",
            "--data-dir",
            str(self.data_dir),
            "--public-url",
            self.public_url,
            *self.extra,
        ]
        if self.database:
            cmd += ["--database", self.database]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=os.environ | self.env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-2000:]}")
            try:
                httpx.get(f"{self.url}/api/sys/status", timeout=1, verify=self.verify)
                return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("server did not start in 30 s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def restart(self) -> Server:
        """Stop and start again on the same port (identities keep their apiUrl)."""
        self.stop()
        return self.start()

    def output(self) -> str:
        return self.log.read_text()


class Api:
    """A thin JSON client for tests: one short-lived connection per call."""

    def __init__(self, url: str, token: str | None = None) -> None:
        self.url = url
        self.headers = {"authorization": f"Bearer {token}"} if token else {}

    def raw(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = self.headers | kwargs.pop("headers", {})
        return httpx.request(method, self.url + path, headers=headers, timeout=30, **kwargs)

    def call(self, method: str, path: str, body: Any = None, **kwargs: Any) -> tuple[int, Any]:
        response = self.raw(method, path, json=body, **kwargs)
        return response.status_code, response.json()

    def ok(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        status, data = self.call(method, path, body, **kwargs)
        assert status in (200, 201), (status, data)
        return data


def init_and_unseal(url: str, shares: int = 3, threshold: int = 2) -> tuple[list[str], str]:
    api = Api(url)
    result = api.ok("POST", "/api/sys/init", {"shares": shares, "threshold": threshold})
    for share in result["shares"][:threshold]:
        api.ok("POST", "/api/sys/unseal", {"share": share})
    return result["shares"], result["rootToken"]


class Machine:
    """A machine identity for raw signed requests (what an SDK does, step by step)."""

    def __init__(self, url: str, machine_id: str, key: Any) -> None:
        self.url = url
        self.id = machine_id
        self.key = key

    @classmethod
    def enroll(cls, server: Server, vault_id: str, token: str, **extra: Any) -> Machine:
        import base64

        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        key = Ed25519PrivateKey.generate()
        public = base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()
        body = {"token": token, "publicKey": public, "hostname": "test-host"} | extra
        response = httpx.post(f"{server.url}/v1/{vault_id}/enroll/register", json=body, timeout=30)
        assert response.status_code == 200, response.text
        return cls(server.url, response.json()["machineId"], key)

    def headers(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        *,
        timestamp: int | None = None,
        nonce: str | None = None,
        key: Any = None,
    ) -> dict[str, str]:
        import base64
        import secrets

        from sikker.core import signing

        ts = str(timestamp if timestamp is not None else int(time.time()))
        nonce = nonce or base64.b64encode(secrets.token_bytes(16)).decode()
        message = signing.canonical(method, path, ts, nonce, body)
        signature = base64.b64encode((key or self.key).sign(message)).decode()
        return {"X-Machine-Id": self.id, "X-Timestamp": ts, "X-Nonce": nonce, "X-Signature": signature}

    def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        *,
        send_body: bytes | None = None,
        query: str = "",
        **kwargs: Any,
    ) -> httpx.Response:
        headers = self.headers(method, path, body, **kwargs)
        if body:
            headers["Content-Type"] = "application/json"
        url = self.url + path + (f"?{query}" if query else "")
        content = send_body if send_body is not None else body
        return httpx.request(method, url, headers=headers, content=content or None, timeout=30)


@contextmanager
def scram_postgres() -> Iterator[tuple[int, str, str]]:
    """A private, throwaway PostgreSQL cluster that checks passwords (scram-sha-256), unlike
    the machine's shared server, which trusts local logins. Yields (port, admin user,
    admin password). Skips (or fails under CI) when the server binaries are missing."""
    with scram_cluster() as cluster:
        yield cluster.port, cluster.admin, cluster.password


class ScramCluster:
    """The private cluster of ``scram_cluster``, which a test may stop and start again."""

    def __init__(self, ctl: list[str], options: str, log: Path, port: int, password: str) -> None:
        self.ctl, self.options, self.log = ctl, options, log
        self.port, self.admin, self.password = port, "admin", password

    def start(self) -> None:
        start = [*self.ctl, "-o", self.options, "-l", str(self.log), "-w", "start"]
        subprocess.run(start, check=True, capture_output=True)

    def stop(self) -> None:
        subprocess.run([*self.ctl, "-m", "immediate", "-w", "stop"], check=False, capture_output=True)


@contextmanager
def scram_cluster() -> Iterator[ScramCluster]:
    """``scram_postgres`` as an object with ``stop()`` and ``start()`` (a database that goes
    down and comes back)."""
    import secrets as pysecrets
    import shutil
    import tempfile

    root = Path("/usr/lib/postgresql")
    versions = sorted(root.iterdir(), key=lambda p: int(p.name)) if root.is_dir() else []
    found = [v / "bin" for v in versions if (v / "bin" / "initdb").exists()]
    if not found:
        if IN_CI:
            pytest.fail("PostgreSQL server binaries (initdb) are not installed and CI=true")
        pytest.skip("PostgreSQL server binaries (initdb) are not installed")
    bindir = found[-1]
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    data = Path(tempfile.mkdtemp(prefix="sikker-scram-pg-"))
    password, port = pysecrets.token_urlsafe(16), free_port()
    (data / "pw").write_text(password)
    if as_postgres:
        shutil.chown(data, "postgres")
        shutil.chown(data / "pw", "postgres")
    cluster = data / "cluster"
    initdb = [*as_postgres, str(bindir / "initdb"), "-D", str(cluster), "-U", "admin"]
    flags = [f"--pwfile={data / 'pw'}", "--auth=scram-sha-256", "--no-sync", "-E", "UTF8"]
    subprocess.run([*initdb, *flags], check=True, capture_output=True)
    options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off"
    running = ScramCluster(
        [*as_postgres, str(bindir / "pg_ctl"), "-D", str(cluster)], options, data / "log", port, password
    )
    running.start()
    try:
        yield running
    finally:
        running.stop()
        shutil.rmtree(data, ignore_errors=True)


# -- databases whose credentials `sikker agent` rotates in the e2e tests and benches ----------
class MariaDBTarget:
    provider, port, database = "mysql", 3306, "test"
    admin_user, admin_password = "root", ""

    def create(self, user: str, password: str) -> None:
        with self._admin() as conn, conn.cursor() as cur:
            cur.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", (user, password))
            cur.execute(f"GRANT SELECT ON test.* TO `{user}`@'%'")

    def drop(self, *users: str) -> None:
        with self._admin() as conn, conn.cursor() as cur:
            for user in users:
                cur.execute("DROP USER IF EXISTS %s@'%%'", (user,))

    def login(self, user: str, password: str) -> bool:
        try:
            conn = pymysql.connect(
                host="127.0.0.1", port=3306, user=user, password=password, connect_timeout=3
            )
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
            conn.close()
            return True
        except pymysql.err.OperationalError:
            return False

    def users(self, prefix: str) -> set[str]:
        with self._admin() as conn, conn.cursor() as cur:
            cur.execute("SELECT User FROM mysql.user WHERE User LIKE %s", (prefix + "%",))
            return {row[0] for row in cur.fetchall()}

    def _admin(self) -> pymysql.connections.Connection:  # type: ignore[type-arg]
        try:
            return pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", autocommit=True)
        except pymysql.err.OperationalError:
            if IN_CI:
                pytest.fail("MariaDB is not reachable at 127.0.0.1:3306 and CI=true: start it")
            pytest.skip("MariaDB is not running")


class PostgresTarget:
    provider, database = "postgresql", "postgres"

    def __init__(self, port: int, admin_user: str, admin_password: str) -> None:
        self.port, self.admin_user, self.admin_password = port, admin_user, admin_password

    def _connect(self, user: str, password: str) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            dbname="postgres",
            user=user,
            password=password,
            connect_timeout=3,
            autocommit=True,
        )

    def create(self, user: str, password: str) -> None:
        with self._connect(self.admin_user, self.admin_password) as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(user), sql.Literal(password)
                )
            )

    def drop(self, *users: str) -> None:
        pass  # the whole cluster is thrown away

    def users(self, prefix: str) -> set[str]:
        with self._connect(self.admin_user, self.admin_password) as conn:
            rows = conn.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE %s", (prefix + "%",))
            return {str(row[0]) for row in rows}

    def login(self, user: str, password: str) -> bool:
        try:
            with self._connect(user, password) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.OperationalError:
            return False


DatabaseTarget = MariaDBTarget | PostgresTarget


@contextmanager
def target_database(name: str) -> Iterator[DatabaseTarget]:
    """A database whose credentials an agent rotates: the local MariaDB, or a private
    scram-sha-256 PostgreSQL cluster (the shared one trusts local logins)."""
    if name == "mariadb":
        yield MariaDBTarget()
    else:
        with scram_postgres() as (port, admin, password):
            yield PostgresTarget(port, admin, password)

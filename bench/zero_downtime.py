"""Zero-downtime proof for database credential rotation (MariaDB or PostgreSQL, real passwords).

A consumer reads the credential through the official SikkerKey SDK's watch and opens a
NEW database connection every 50 ms with whatever it currently holds, while the secret is
rotated N times by a real `sikker agent`. Prints failed logins per strategy.

    .venv/bin/python bench/zero_downtime.py --strategy alternating --rotations 20
    .venv/bin/python bench/zero_downtime.py --strategy single --rotations 20
    .venv/bin/python bench/zero_downtime.py --engine postgresql --strategy alternating

MariaDB: the server on 127.0.0.1:3306 (root without password). PostgreSQL: the machine's
server trusts local logins, so the bench starts a private scram-sha-256 cluster
(tests.support.scram_postgres) and rotates there.
Each rotation takes 10-20 s (agent and SDK both poll every 10 s).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support import Api, DatabaseTarget, Server, init_and_unseal, target_database


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--engine", choices=["mariadb", "postgresql"], default="mariadb")
    parser.add_argument("--strategy", choices=["alternating", "single"], default="alternating")
    parser.add_argument("--rotations", type=int, default=20)
    parser.add_argument("--grace", type=int, default=30, help="seconds the previous user stays valid")
    args = parser.parse_args()
    with target_database(args.engine) as db:
        run(db, args)


def run(db: DatabaseTarget, args: argparse.Namespace) -> None:
    user, password = f"sk_zd_{secrets.token_hex(3)}", secrets.token_urlsafe(16)
    db.create(user, password)
    tmp = Path(tempfile.mkdtemp())
    server = Server(f"sqlite:///{tmp / 'z.db'}", tmp / "data").start()
    agent_proc = None
    stop = threading.Event()
    try:
        _, token = init_and_unseal(server.url)
        root = Api(server.url, token)
        vault = root.ok("POST", "/api/vaults", {"name": "v"})["id"]
        project = root.ok("POST", f"/api/vaults/{vault}/projects", {"name": "db"})["id"]
        admin_fields = {"username": db.admin_user, "password": db.admin_password}
        admin_secret = root.ok(
            "POST", f"/api/projects/{project}/secrets", {"name": "admin", "fields": admin_fields}
        )["id"]
        cred = root.ok(
            "POST",
            f"/api/projects/{project}/secrets",
            {"name": "app-db", "fields": {"username": user, "password": password}},
        )["id"]
        managed = {
            "provider": db.provider,
            "host": "127.0.0.1",
            "port": db.port,
            "database": db.database,
            "adminSecretId": admin_secret,
            "strategy": args.strategy,
            "graceSeconds": args.grace,
        }
        if args.strategy == "alternating":
            managed["altUsername"] = f"{user}_b"
        root.ok("PUT", f"/api/secrets/{cred}/managed", managed)
        enroll = root.ok(
            "POST",
            f"/api/vaults/{vault}/enrollment-tokens",
            {"projectIds": [project], "secretIds": [cred], "maxUses": 2},
        )["token"]
        homes = {name: tmp / name for name in ("agent", "app")}
        for home in homes.values():
            env = os.environ | {"SIKKERKEY_HOME": str(home)}
            command = [
                "machine",
                "bootstrap",
                "--url",
                server.public_url,
                "--vault",
                vault,
                "--token",
                enroll,
            ]
            subprocess.run(
                [sys.executable, "-m", "sikker", *command], env=env, check=True, capture_output=True
            )
        agent_env = os.environ | {"SIKKERKEY_HOME": str(homes["agent"])}
        agent_proc = subprocess.Popen(
            [sys.executable, "-m", "sikker", "agent", "start", "--secret", cred],
            env=agent_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        os.environ["SIKKERKEY_HOME"] = str(homes["app"])
        from sikkerkey import SikkerKey

        sk = SikkerKey(vault)
        current = json.loads(sk.get_secret(cred))
        lock = threading.Lock()

        def on_change(event: object) -> None:
            if getattr(event, "fields", None):
                with lock:
                    current.update(event.fields)  # type: ignore[attr-defined]

        sk.set_poll_interval(10)
        sk.watch(cred, on_change)
        attempts = failures = 0

        def hammer() -> None:
            nonlocal attempts, failures
            while not stop.is_set():
                with lock:
                    u, p = current["username"], current["password"]
                attempts += 1
                failures += not db.login(u, p)
                time.sleep(0.05)

        worker = threading.Thread(target=hammer, daemon=True)
        worker.start()
        started = time.monotonic()
        for i in range(args.rotations):
            before = root.ok("GET", f"/api/secrets/{cred}/versions")["versions"][0]["version"]
            root.ok("POST", f"/api/secrets/{cred}/rotate")
            while root.ok("GET", f"/api/secrets/{cred}/versions")["versions"][0]["version"] == before:
                time.sleep(0.2)
            time.sleep(11)  # let the consumer's watch (10 s) pick the new value up
            print(f"rotation {i + 1}/{args.rotations}: connections {attempts}, failed {failures}", flush=True)
        stop.set()
        worker.join()
        sk.close()
        elapsed = time.monotonic() - started
        print(
            f"\nengine={db.provider} strategy={args.strategy} rotations={args.rotations} grace={args.grace}s "
            f"duration={elapsed:.0f}s connections={attempts} failed_logins={failures}"
        )
    finally:
        stop.set()
        if agent_proc is not None:
            agent_proc.terminate()
            agent_proc.wait(15)
        server.stop()
        db.drop(user, f"{user}_b")


if __name__ == "__main__":
    main()

"""Server time of the console's secrets page in a project with 10,000 secrets.

    .venv/bin/python bench/console.py [--secrets 10000] [--reps 300] [--pg]   (make bench-console)

Builds a store in a temporary directory (or a fresh PostgreSQL database with ``--pg``): one
vault, one project, ``--secrets`` secrets (sealed like any other, inserted in batches of 1,000
per transaction), and a person with the developer role. Then it signs in through the console
and renders, in process (Starlette's TestClient: no network, no browser), ``--reps`` times
each: the first page, a page deep in the list (keyset paging), and a search. Every request goes
the whole way: cookie -> session lookup -> permission decision -> paged query -> template.
Prints p50/p95/p99 in ms against the 300 ms target.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
import warnings
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sikker.api.app import create_app
from sikker.config import Settings
from sikker.core import audit, ids, values
from sikker.core.model import Principal, Secret
from sikker.service.bootstrap import bootstrap
from sikker.storage import secrets as secret_store

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

ROOT = Principal("root", "bench", None)
ACTOR = audit.Actor("root", "bench", "127.0.0.1", "bench")
PASSWORD = "correct horse battery staple"
TARGET_MS = 300.0


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)
    q = statistics.quantiles(ordered, n=100, method="inclusive")
    return q[49], q[94], q[98]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--secrets", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=300)
    parser.add_argument("--pg", action="store_true", help="use a fresh database on the local PostgreSQL")
    args = parser.parse_args()
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        if args.pg:
            from tests.support import fresh_pg_database

            url = stack.enter_context(fresh_pg_database())
        else:
            url = f"sqlite:///{tmp / 'bench.db'}"
        svc = bootstrap(Settings(database=url, data_dir=tmp))
        stack.callback(svc.close)
        svc.deps.db.migrate()
        svc.seal.submit_share(svc.seal.init(1, 1, ACTOR).shares[0], ACTOR)
        vault = svc.vaults.create_vault(ROOT, ACTOR, "bench")
        project = svc.vaults.create_project(ROOT, ACTOR, vault.id, "big")
        started = time.perf_counter()
        value = values.standard("v" * 32)
        for batch in range(0, args.secrets, 1000):
            with svc.deps.db.write() as conn:
                now = svc.deps.clock()
                for i in range(batch, min(batch + 1000, args.secrets)):
                    secret = Secret(ids.new_id("secret"), vault.id, project.id, f"SECRET_{i:05d}", "standard",
                                    1, now, now, None)  # fmt: skip
                    secret_store.insert_secret(conn, secret)
                    svc.secrets.write_version(conn, project, secret.id, 1, value, ACTOR, now)
        print(f"store: {'postgresql' if args.pg else 'sqlite'}; {args.secrets} secrets inserted in "
              f"{time.perf_counter() - started:.1f} s")  # fmt: skip
        svc.people.create_user(ROOT, ACTOR, "dev", "dev@example.org", PASSWORD)
        svc.people.bind(ROOT, ACTOR, "developer", vault_id=vault.id, user="dev")
        client = TestClient(create_app(svc), base_url="http://testserver")
        nonce = re.search(r'name="nonce" value="([^"]+)"', client.get("/ui/login").text)
        assert nonce is not None
        signed = client.post("/ui/login", data={"nonce": nonce.group(1), "user": "dev", "password": PASSWORD})
        assert signed.status_code == 200, signed.status_code
        deep = f"SECRET_{args.secrets * 9 // 10:05d}"
        pages = {
            "first page": f"/ui/projects/{project.id}",
            "page at 90%": f"/ui/projects/{project.id}?after={deep}",
            "search 'ECRET_0999'": f"/ui/projects/{project.id}?q=ECRET_0999",
        }
        print(f"{'page':<22} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}  target {TARGET_MS:.0f} ms")
        for label, path in pages.items():
            assert client.get(path).status_code == 200
            samples = []
            for _ in range(args.reps):
                t0 = time.perf_counter()
                response = client.get(path)
                samples.append((time.perf_counter() - t0) * 1000)
                assert response.status_code == 200 and "SECRET_" in response.text
            p50, p95, p99 = percentiles(samples)
            verdict = "ok" if p99 < TARGET_MS else "OVER"
            print(f"{label:<22} {p50:8.2f} {p95:8.2f} {p99:8.2f}  {verdict}")


if __name__ == "__main__":
    main()

"""Property-based fuzz of the admin API from its own OpenAPI document (schemathesis): requests
generated from every admin operation, sent with the root token to a real server on SQLite,
must never get a 5xx. A short, bounded profile (a few examples per operation, a time budget)
so that CI runs it on every change."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings

from tests.support import Api, Server, init_and_unseal

EXAMPLES = 15  # per operation
BUDGET_S = 75.0  # the whole fuzz; operations left when it is spent are skipped (and named)
# Operations that would end the run (seal, re-init, sign the root out) or reach the network.
SKIPPED = {
    ("POST", "/api/sys/seal"),
    ("POST", "/api/sys/init"),
    ("POST", "/api/sys/unseal"),
    ("POST", "/api/auth/logout"),
    ("POST", "/api/audit-streams"),
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    base: Path = tmp_path_factory.mktemp("fuzz")
    server = Server(f"sqlite:///{base / 'a.db'}", base / "data").start()
    try:
        _, token = init_and_unseal(server.url)
        root = Api(server.url, token)
        vault = root.ok("POST", "/api/vaults", {"name": "fuzz"})["id"]
        root.ok("POST", f"/api/vaults/{vault}/projects", {"name": "p"})
        yield {"server": server, "token": token}
    finally:
        server.stop()


def test_no_admin_operation_answers_5xx(world: dict[str, Any]) -> None:
    server: Server = world["server"]
    schema = schemathesis.openapi.from_url(f"{server.url}/api/openapi.json")
    headers = {"Authorization": f"Bearer {world['token']}"}
    failures: list[str] = []
    skipped: list[str] = []
    started = time.monotonic()
    tried = 0
    statuses: dict[int, int] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        key = (operation.method.upper(), operation.path)
        if not operation.path.startswith("/api/") or key in SKIPPED:
            continue
        if time.monotonic() - started > BUDGET_S:
            skipped.append(f"{key[0]} {key[1]}")
            continue
        tried += 1

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def fuzz(case: Any) -> None:
            response = case.call(base_url=server.url, headers=headers, timeout=30)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path} -> {response.status_code}: {case.body!r}"
                )

        fuzz()
    print(f"fuzzed {tried} operations, {sum(statuses.values())} requests: {dict(sorted(statuses.items()))}")
    assert tried > 50, tried
    assert failures == [], "\n".join(failures[:20])
    # Reported, not failed: a slow machine may run out of budget before the last operations.
    if skipped:
        print(f"fuzz budget spent; not fuzzed: {', '.join(skipped)}")

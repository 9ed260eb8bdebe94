"""Fail closed: when the audit log cannot be written, no value leaves the server; service
returns by itself when the audit store recovers."""

from __future__ import annotations

import concurrent.futures

import sqlalchemy as sa

from tests.support import Api, Machine, Server, init_and_unseal

BREAK = {
    "sqlite": [
        "CREATE TRIGGER audit_down BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'disk full'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION audit_down() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'disk full'; END $$ "
        "LANGUAGE plpgsql",
        "CREATE TRIGGER audit_down BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION audit_down()",
    ],
}
REPAIR = {
    "sqlite": ["DROP TRIGGER audit_down"],
    "postgresql": ["DROP TRIGGER audit_down ON audit_log", "DROP FUNCTION audit_down()"],
}


def run_sql(server: Server, statements: list[str]) -> None:
    engine = sa.create_engine(server.database.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)
    engine.dispose()


def test_reads_are_refused_with_503_and_no_value_while_audit_is_unwritable(server: Server) -> None:
    marker = "FAILCLOSED-7d1f9c"
    _, token = init_and_unseal(server.url)
    root = Api(server.url, token)
    vault = root.ok("POST", "/api/vaults", {"name": "v"})["id"]
    project = root.ok("POST", f"/api/vaults/{vault}/projects", {"name": "p"})["id"]
    secret = root.ok("POST", f"/api/projects/{project}/secrets", {"name": "s", "value": marker})["id"]
    enroll = root.ok(
        "POST",
        f"/api/vaults/{vault}/enrollment-tokens",
        {"projectIds": [project], "secretIds": [secret], "maxUses": 5},
    )["token"]
    machine = Machine.enroll(server, vault, enroll)
    assert machine.request("GET", f"/v1/secret/{secret}").json() == {"value": marker}

    dialect = "sqlite" if server.database.startswith("sqlite") else "postgresql"
    run_sql(server, BREAK[dialect])

    def machine_read(_: int) -> tuple[int, str]:
        r = machine.request("GET", f"/v1/secret/{secret}")
        return r.status_code, r.text

    def admin_read(_: int) -> tuple[int, str]:
        r = root.raw("GET", f"/api/secrets/{secret}")
        return r.status_code, r.text

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(machine_read, range(40))) + list(pool.map(admin_read, range(40)))
    export = machine.request("POST", "/v1/secrets/export")
    results.append((export.status_code, export.text))
    statuses = {status for status, _ in results}
    assert statuses == {503}, statuses
    assert sum(marker in body for _, body in results) == 0
    assert all("audit log cannot be written" in body for _, body in results)

    run_sql(server, REPAIR[dialect])
    assert machine.request("GET", f"/v1/secret/{secret}").json() == {"value": marker}
    assert root.ok("GET", f"/api/secrets/{secret}")["value"] == marker

"""``sikker token create --role/--project`` as a user runs it (docs/operator/identity.md)."""

from __future__ import annotations

import json

from tests.e2e.test_cli import ok, run
from tests.support import Server, init_and_unseal


def test_a_viewer_token_from_the_cli_lists_but_never_reads(server: Server) -> None:
    _, root = init_and_unseal(server.url)
    vault = ok(server, "vault", "create", "v", token=root)
    project = ok(server, "project", "create", "--vault", vault, "p", token=root)
    sid = ok(
        server, "secret", "create", "--project", project, "K", "--value-file", "-", token=root, stdin="x"
    )
    created = json.loads(
        ok(
            server,
            "token",
            "create",
            "--vault",
            vault,
            "--project",
            project,
            "--role",
            "viewer",
            "--json",
            token=root,
        )
    )
    viewer = created["token"]
    assert sid in ok(server, "secret", "list", "--project", project, token=viewer)
    denied = run(server, "secret", "get", sid, token=viewer)
    assert denied.returncode == 3 and "role viewer may not secret:read" in denied.stderr
    listed = json.loads(ok(server, "token", "list", "--json", token=root))
    assert {(t["id"], t["role"], t["projectId"]) for t in listed} >= {(created["id"], "viewer", project)}
    bad = run(server, "token", "create", "--vault", vault, "--role", "superuser", token=root)
    assert bad.returncode == 2 and "superuser" in bad.stderr

"""Liveness and readiness probes (docs/operator/observability.md), over real HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.test_database_down import set_connections
from tests.support import Api, Server, fresh_pg_database, init_and_unseal


def probes(server: Server) -> tuple[tuple[int, dict[str, str]], tuple[int, dict[str, str]]]:
    api = Api(server.url)
    return api.call("GET", "/api/sys/health/live"), api.call("GET", "/api/sys/health/ready")


def test_a_sealed_node_is_alive_but_not_ready(server: Server) -> None:
    (live, live_body), (ready, ready_body) = probes(server)
    assert (live, live_body) == (200, {"status": "alive"})
    assert (ready, ready_body) == (503, {"error": "sealed"})  # not initialised counts as sealed
    _, token = init_and_unseal(server.url)
    Api(server.url, token).ok("POST", "/api/sys/seal")
    (live, _), (ready, ready_body) = probes(server)
    assert (live, ready, ready_body) == (200, 503, {"error": "sealed"})


def test_an_unsealed_node_is_alive_and_ready(server: Server) -> None:
    init_and_unseal(server.url)
    (live, _), (ready, body) = probes(server)
    assert (live, ready, body) == (200, 200, {"status": "ready"})


def test_probes_need_no_token_and_say_no_more_than_health(server: Server) -> None:
    init_and_unseal(server.url)
    for path in ("/api/sys/health/live", "/api/sys/health/ready"):
        response = Api(server.url).raw("GET", path)
        assert response.status_code == 200 and set(response.json()) == {"status"}


@pytest.mark.postgres
def test_a_node_whose_postgresql_is_unreachable_is_alive_but_not_ready_(
    tmp_path: Path,
) -> None:
    with fresh_pg_database() as url:
        server = Server(url, tmp_path / "data").start()
        try:
            init_and_unseal(server.url)
            assert probes(server)[1][0] == 200
            set_connections(url, allowed=False)
            # (That a probe never waits on a hanging store longer than the bound is
            # tests/unit/service/test_health.py.)
            (live, _), (ready, body) = probes(server)
            assert (live, ready, body) == (200, 503, {"error": "store unreachable"})
            set_connections(url, allowed=True)
            assert probes(server)[1][0] == 200  # ready again by itself
        finally:
            server.stop()
            set_connections(url, allowed=True)

"""Init, unseal, seal and restart, over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from tests.support import Api, Server, init_and_unseal


def test_a_new_server_is_sealed_and_refuses_admin_routes_with_503(server: Server) -> None:
    api = Api(server.url)
    status, body = api.call("GET", "/api/sys/status")
    assert status == 200 and body["initialized"] is False and body["sealed"] is True
    status, body = api.call("GET", "/api/vaults")
    assert status == 503 and body == {"error": body["error"]} and "sealed" in body["error"]
    assert api.call("GET", "/api/sys/health")[0] == 503


def test_threshold_shares_unseal_and_fewer_do_not(server: Server) -> None:
    api = Api(server.url)
    init = api.ok("POST", "/api/sys/init", {"shares": 5, "threshold": 3})
    assert len(init["shares"]) == 5 and init["rootToken"]
    for share in init["shares"][:2]:
        state = api.ok("POST", "/api/sys/unseal", {"share": share})
    assert state["sealed"] is True and state["progress"] == 2
    assert Api(server.url, init["rootToken"]).call("GET", "/api/vaults")[0] == 503
    state = api.ok("POST", "/api/sys/unseal", {"share": init["shares"][4]})
    assert state["sealed"] is False
    assert Api(server.url, init["rootToken"]).call("GET", "/api/vaults")[0] == 200


def test_init_happens_once(server: Server) -> None:
    init_and_unseal(server.url)
    status, body = Api(server.url).call("POST", "/api/sys/init", {"shares": 1, "threshold": 1})
    assert status == 409 and "already" in body["error"]


def test_a_corrupted_share_is_rejected_and_does_not_count(server: Server) -> None:
    api = Api(server.url)
    init = api.ok("POST", "/api/sys/init", {"shares": 3, "threshold": 2})
    share = init["shares"][0]
    corrupted = share[:10] + ("A" if share[10] != "A" else "B") + share[11:]
    status, body = api.call("POST", "/api/sys/unseal", {"share": corrupted})
    assert status == 400 and "corrupted" in body["error"]
    assert api.ok("GET", "/api/sys/status")["progress"] == 0


def test_shares_of_another_server_never_unseal(server: Server, tmp_path_factory) -> None:  # type: ignore[no-untyped-def]
    other = Server(
        f"sqlite:///{tmp_path_factory.mktemp('other') / 'o.db'}", tmp_path_factory.mktemp("other-data")
    ).start()
    try:
        foreign = Api(other.url).ok("POST", "/api/sys/init", {"shares": 3, "threshold": 2})["shares"]
    finally:
        other.stop()
    api = Api(server.url)
    api.ok("POST", "/api/sys/init", {"shares": 3, "threshold": 2})
    api.ok("POST", "/api/sys/unseal", {"share": foreign[0]})
    status, body = api.call("POST", "/api/sys/unseal", {"share": foreign[1]})
    assert status == 400 and "do not reconstruct" in body["error"]
    state = api.ok("GET", "/api/sys/status")
    assert state["sealed"] is True and state["progress"] == 0


def test_a_repeated_share_is_refused(server: Server) -> None:
    api = Api(server.url)
    init = api.ok("POST", "/api/sys/init", {"shares": 3, "threshold": 2})
    api.ok("POST", "/api/sys/unseal", {"share": init["shares"][0]})
    status, body = api.call("POST", "/api/sys/unseal", {"share": init["shares"][0]})
    assert status == 400 and "already" in body["error"]


def test_restart_leaves_the_server_sealed_and_data_survives_unseal(server: Server) -> None:
    shares, root = init_and_unseal(server.url, 3, 2)
    api = Api(server.url, root)
    vault = api.ok("POST", "/api/vaults", {"name": "v"})["id"]
    project = api.ok("POST", f"/api/vaults/{vault}/projects", {"name": "p"})["id"]
    value = "pässwörd \u2603 with 'quotes' and \"dq\" \n newline"
    secret = api.ok("POST", f"/api/projects/{project}/secrets", {"name": "S", "value": value})["id"]

    server.restart()
    api = Api(server.url, root)
    assert api.call("GET", f"/api/secrets/{secret}")[0] == 503
    assert Api(server.url).ok("GET", "/api/sys/status")["sealed"] is True
    Api(server.url).ok("POST", "/api/sys/unseal", {"share": shares[2]})
    Api(server.url).ok("POST", "/api/sys/unseal", {"share": shares[0]})
    assert api.ok("GET", f"/api/secrets/{secret}")["value"] == value


def test_seal_needs_the_root_token_and_then_everything_is_503(server: Server) -> None:
    _, root = init_and_unseal(server.url)
    assert Api(server.url).call("POST", "/api/sys/seal")[0] == 401
    Api(server.url, root).ok("POST", "/api/sys/seal")
    status, body = Api(server.url, root).call("GET", "/api/vaults")
    assert status == 503 and "sealed" in body["error"]

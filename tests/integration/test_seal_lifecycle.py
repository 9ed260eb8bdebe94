"""Init, unseal, seal and restart, over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import httpx

from sikker.crypto import shamir
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


def _forged(share: str, index: int | None = None) -> str:
    """A well-formed share (valid checksum) that is not one of the server's."""
    raw = bytearray(shamir.decode_share(share))
    if index is not None:
        raw[0] = index
    raw[1] ^= 0xFF
    return shamir.encode_share(bytes(raw))


def _from(address: str, url: str) -> Api:
    """An API client whose connections come from another loopback address."""
    api = Api(url)

    def raw(method: str, path: str, **kwargs: Any) -> httpx.Response:
        transport = httpx.HTTPTransport(local_address=address)
        with httpx.Client(transport=transport, timeout=30) as client:
            return client.request(
                method, url + path, headers=api.headers | kwargs.pop("headers", {}), **kwargs
            )

    api.raw = raw  # type: ignore[method-assign]
    return api


def _system_audit(url: str, token: str) -> list[dict[str, Any]]:
    export = Api(url, token).raw("GET", "/api/audit/system/export")
    assert export.status_code == 200, export.text
    lines = [json.loads(line) for line in export.text.splitlines()]
    return [r for r in lines if r["type"] == "record"]


def test_a_forged_share_cannot_lock_out_the_real_ones(server: Server) -> None:
    api, attacker = Api(server.url), _from("127.0.0.2", server.url)
    init = api.ok("POST", "/api/sys/init", {"shares": 3, "threshold": 2})
    shares = init["shares"]
    # Same index as the operator's share 1, different bytes: one of the two is not genuine, the
    # server cannot tell which, so it keeps neither (no silent replacement, no lock-out).
    assert attacker.call("POST", "/api/sys/unseal", {"share": _forged(shares[0])})[0] == 200
    status, body = api.call("POST", "/api/sys/unseal", {"share": shares[0]})
    assert status == 400 and "discarded" in body["error"], body
    assert api.ok("GET", "/api/sys/status")["progress"] == 0
    # A forged share under another index spoils the combination: progress is discarded too.
    assert attacker.call("POST", "/api/sys/unseal", {"share": _forged(shares[0], index=3)})[0] == 200
    status, body = api.call("POST", "/api/sys/unseal", {"share": shares[0]})
    assert status == 400 and "start again" in body["error"], body
    # An index this server never issued is refused on its own and changes nothing.
    api.ok("POST", "/api/sys/unseal", {"share": shares[0]})
    status, body = attacker.call("POST", "/api/sys/unseal", {"share": _forged(shares[0], index=9)})
    assert status == 400 and "not a share of this server" in body["error"], body
    assert api.ok("GET", "/api/sys/status")["progress"] == 1
    # The documented recovery, with no restart: enter the real shares again.
    assert api.ok("POST", "/api/sys/unseal", {"share": shares[1]})["sealed"] is False

    records = [
        r for r in _system_audit(server.url, init["rootToken"]) if r["action"] == "operator:seal:unseal"
    ]
    assert [(r["result"], r["source_ip"]) for r in records] == [
        ("accepted", "127.0.0.2"),
        ("denied", "127.0.0.1"),
        ("accepted", "127.0.0.2"),
        ("denied", "127.0.0.1"),
        ("accepted", "127.0.0.1"),
        ("denied", "127.0.0.2"),
        ("ok", "127.0.0.1"),
    ]
    assert "conflicting" in records[1]["reason"] and "reconstruct" in records[3]["reason"]
    assert all(shares[0] not in json.dumps(r) and shares[1] not in json.dumps(r) for r in records)


def test_resetting_unseal_progress_needs_the_root_token_and_is_audited(server: Server) -> None:
    api = Api(server.url)
    init = api.ok("POST", "/api/sys/init", {"shares": 3, "threshold": 2})
    api.ok("POST", "/api/sys/unseal", {"share": init["shares"][0]})
    status, body = api.call("POST", "/api/sys/unseal", {"reset": True})
    assert status == 401, body
    status, _ = Api(server.url, "sikker_forged").call("POST", "/api/sys/unseal", {"reset": True})
    assert status == 401
    assert api.ok("GET", "/api/sys/status")["progress"] == 1
    root = Api(server.url, init["rootToken"])
    assert root.ok("POST", "/api/sys/unseal", {"reset": True})["progress"] == 0
    for share in init["shares"][:2]:
        api.ok("POST", "/api/sys/unseal", {"share": share})

    resets = [r for r in _system_audit(server.url, init["rootToken"]) if r["action"] == "operator:seal:reset"]
    assert [(r["result"], r["actor_kind"]) for r in resets] == [
        ("denied", "anonymous"),
        ("denied", "anonymous"),
        ("ok", "root"),
    ]


def test_unseal_calls_are_throttled_per_source_address(server: Server) -> None:
    api, flooder = Api(server.url), _from("127.0.0.2", server.url)
    init = api.ok("POST", "/api/sys/init", {"shares": 3, "threshold": 2})
    statuses = [flooder.call("POST", "/api/sys/unseal", {"reset": True})[0] for _ in range(60)]
    assert 429 in statuses and statuses[-1] == 429
    assert flooder.call("POST", "/api/sys/unseal", {"share": init["shares"][0]})[0] == 429
    assert api.ok("GET", "/api/sys/status")["progress"] == 0
    # Another address is not affected.
    for share in init["shares"][:2]:
        state = api.ok("POST", "/api/sys/unseal", {"share": share})
    assert state["sealed"] is False

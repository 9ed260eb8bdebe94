"""The signed machine-plane client, against an in-process fake server (httpx.MockTransport)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sikker.cli.identity import Identity
from sikker.cli.machine_client import MachineClient, check_api_url
from sikker.core import signing
from sikker.errors import (
    InvalidInput,
    Locked,
    NotFound,
    PermissionDenied,
    RateLimited,
    SikkerError,
    Unauthenticated,
    Unavailable,
)

KEY = Ed25519PrivateKey.generate()
IDENTITY = Identity("m-1", "worker", "vault_abc", "http://localhost:8300/", Path("/unused/private.pem"))


class Recorder:
    """A fake server that records every request and answers with a canned response."""

    def __init__(self, status: int = 200, answer: Any = None) -> None:
        self.status = status
        self.answer = answer if answer is not None else {}
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(self.status, json=self.answer)

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]


@pytest.fixture(autouse=True)
def _no_url_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIKKERKEY_API_URL", raising=False)


def client_for(
    handler: Callable[[httpx.Request], httpx.Response], clock: float = 1_784_893_492
) -> MachineClient:
    return MachineClient(IDENTITY, KEY, transport=httpx.MockTransport(handler), clock=lambda: clock)


def assert_signed(request: httpx.Request, body: bytes) -> None:
    h = request.headers
    assert h["x-machine-id"] == "m-1"
    assert h["x-timestamp"] == "1784893492"
    assert len(base64.b64decode(h["x-nonce"], validate=True)) == 16
    message = signing.canonical(request.method, request.url.path, h["x-timestamp"], h["x-nonce"], body)
    KEY.public_key().verify(base64.b64decode(h["x-signature"], validate=True), message)


def test_get_is_signed_over_the_path_and_empty_body_without_content_type() -> None:
    server = Recorder(answer={"value": "s3cret"})
    assert client_for(server).get_secret("sk_abc") == "s3cret"
    request = server.last
    assert request.method == "GET" and str(request.url) == "http://localhost:8300/v1/secret/sk_abc"
    assert request.content == b""
    assert "content-type" not in request.headers
    assert_signed(request, b"")


def test_post_sends_exactly_the_bytes_it_signed_with_json_content_type() -> None:
    server = Recorder(answer={"changes": {}})
    assert client_for(server).poll(["sk_a", "sk_b"]) == {}
    request = server.last
    assert request.content == b'{"watch":["sk_a","sk_b"]}'
    assert request.headers["content-type"] == "application/json"
    assert_signed(request, request.content)


def test_raw_request_hashes_the_caller_bytes_verbatim() -> None:
    server = Recorder(answer={"secrets": []})
    body = b'{"projectId": "proj_x"}'  # spaced, as the Python SDK sends it
    client_for(server).request("POST", "/v1/secrets/list", body)
    assert server.last.content == body
    assert_signed(server.last, body)


def test_every_request_gets_a_fresh_nonce() -> None:
    server = Recorder(answer={"secrets": []})
    client = client_for(server)
    client.list_secrets()
    client.list_secrets()
    assert server.requests[0].headers["x-nonce"] != server.requests[1].headers["x-nonce"]


def test_export_without_project_sends_no_body() -> None:
    server = Recorder(answer={"secrets": [{"id": "sk_a", "name": "a", "value": "v", "fieldNames": None}]})
    assert client_for(server).export()[0]["value"] == "v"
    assert server.last.content == b"" and "content-type" not in server.last.headers
    assert_signed(server.last, b"")


def test_export_with_project_sends_the_project_id() -> None:
    server = Recorder(answer={"secrets": []})
    client_for(server).export("proj_x")
    assert json.loads(server.last.content) == {"projectId": "proj_x"}
    assert_signed(server.last, server.last.content)


@pytest.mark.parametrize(
    ("call", "method", "path", "answer"),
    [
        (lambda c: c.list_secrets(), "GET", "/v1/secrets", {"secrets": []}),
        (lambda c: c.list_by_project("proj_x"), "POST", "/v1/secrets/list", {"secrets": []}),
        (lambda c: c.cli_projects(), "GET", "/v1/cli/projects", {"projects": []}),
        (lambda c: c.cli_secrets(), "GET", "/v1/cli/secrets", {"secrets": []}),
    ],
)
def test_helpers_call_their_routes(
    call: Callable[[MachineClient], Any], method: str, path: str, answer: dict[str, Any]
) -> None:
    server = Recorder(answer=answer)
    assert call(client_for(server)) == []
    assert (server.last.method, server.last.url.path) == (method, path)


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, InvalidInput),
        (401, Unauthenticated),
        (403, PermissionDenied),
        (404, NotFound),
        (423, Locked),
        (429, RateLimited),
        (503, Unavailable),
        (500, SikkerError),
    ],
)
def test_error_statuses_map_to_sikker_errors_with_the_server_message(status: int, error: type) -> None:
    server = Recorder(status=status, answer={"error": "the reason"})
    with pytest.raises(error, match="the reason") as info:
        client_for(server).get_secret("sk_abc")
    assert type(info.value) is error


def test_any_status_but_200_is_an_error() -> None:
    with pytest.raises(SikkerError, match="HTTP 201"):
        client_for(lambda r: httpx.Response(201, json={"value": "x"})).get_secret("sk_abc")


def test_transport_failure_is_unavailable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(Unavailable, match="cannot reach the Sikker server at http://localhost:8300"):
        client_for(refuse).get_secret("sk_abc")


@pytest.mark.parametrize("answer", [{}, {"value": 5}, ["value"]])
def test_malformed_answers_are_errors(answer: Any) -> None:
    with pytest.raises(SikkerError, match="malformed"):
        client_for(Recorder(answer=answer)).get_secret("sk_abc")


@pytest.mark.parametrize("secret_id", ["../admin", "sk_a?x=1", "sk a", ""])
def test_ids_that_would_change_the_signed_path_are_refused(secret_id: str) -> None:
    server = Recorder()
    with pytest.raises(InvalidInput):
        client_for(server).get_secret(secret_id)
    assert server.requests == []


def test_sikkerkey_api_url_overrides_the_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIKKERKEY_API_URL", "https://sikker.example.com/")
    server = Recorder(answer={"secrets": []})
    client = client_for(server)
    client.list_secrets()
    assert client.base_url == "https://sikker.example.com"
    assert str(server.last.url) == "https://sikker.example.com/v1/secrets"


@pytest.mark.parametrize(
    "url", ["https://sikker.example.com", "http://localhost:8300", "http://127.0.0.1:8300", "http://[::1]:1"]
)
def test_https_or_loopback_http_is_accepted(url: str) -> None:
    assert check_api_url(url + "/") == url


@pytest.mark.parametrize(
    "url", ["http://sikker.example.com", "ftp://x", "sikker.example.com", "https://x/?a=1"]
)
def test_plain_http_to_other_hosts_is_refused(url: str) -> None:
    with pytest.raises(InvalidInput):
        check_api_url(url)

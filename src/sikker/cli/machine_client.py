"""Client for the machine plane (``/v1/...``): every request Ed25519-signed as SikkerKey clients sign.

Headers: ``X-Machine-Id``, ``X-Timestamp`` (epoch seconds), ``X-Nonce`` (base64 of 16 random
bytes) and ``X-Signature`` (base64 Ed25519 signature over ``sikker.core.signing.canonical``).
Only ``200`` is success; an error body ``{"error": ...}`` becomes the matching Sikker error.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sikker.cli.client import error_for_status, tls_verify, unreachable
from sikker.cli.identity import Identity
from sikker.core import signing
from sikker.errors import InvalidInput, SikkerError

USER_AGENT = "sikker-cli"
_ID = re.compile(r"[A-Za-z0-9_-]+")
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}


def check_api_url(url: str) -> str:
    """The URL without a trailing '/', if it is https:// or plain http:// to this host only."""
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.query or parts.fragment or not parts.hostname:
        raise InvalidInput(f"invalid server URL {url!r}: expected https://host[:port]")
    loopback = parts.hostname in _LOOPBACK or parts.hostname.endswith(".localhost")
    if parts.scheme == "https" or (parts.scheme == "http" and loopback):
        return url
    # Secret values and enrollment tokens must not cross the network in clear text.
    raise InvalidInput(f"refusing to talk to {url}: use https:// (plain http is allowed only to localhost)")


def check_id(kind: str, value: str) -> str:
    """Ids go into signed paths verbatim, so only the characters every client assumes are allowed."""
    if not _ID.fullmatch(value):
        raise InvalidInput(f"invalid {kind} id {value!r}")
    return value


def encode(document: dict[str, Any]) -> bytes:
    """Compact JSON: the exact bytes that are both hashed and sent."""
    return json.dumps(document, separators=(",", ":")).encode()


def error_message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}"


class MachineClient:
    """Signed reads for one machine identity; pass ``transport`` to swap the network out in tests."""

    def __init__(
        self,
        identity: Identity,
        private_key: Ed25519PrivateKey,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.time,
        ca_cert: str | None = None,
    ) -> None:
        """``ca_cert``: a PEM CA file for a server with a private or self-signed certificate
        (``--ca-cert`` / ``SIKKER_CACERT``); default: the system's CAs."""
        self.identity = identity
        self.base_url = check_api_url(os.environ.get("SIKKERKEY_API_URL") or identity.api_url)
        self._key = private_key
        self._clock = clock
        self._http = httpx.Client(
            timeout=timeout,
            transport=transport,
            headers={"user-agent": USER_AGENT},
            verify=tls_verify(ca_cert),
        )

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, body: bytes | None = None) -> Any:
        """Send one signed request and return the decoded JSON of its 200 answer."""
        if not path.startswith("/v1/") or "?" in path or "#" in path:
            raise InvalidInput(f"invalid machine-plane path {path!r}")
        method = method.upper()
        payload = body or b""
        timestamp = str(int(self._clock()))
        nonce = base64.b64encode(secrets.token_bytes(16)).decode()
        signature = self._key.sign(signing.canonical(method, path, timestamp, nonce, payload))
        headers = {
            "X-Machine-Id": self.identity.machine_id,
            "X-Timestamp": timestamp,
            "X-Nonce": nonce,
            "X-Signature": base64.b64encode(signature).decode(),
        }
        if payload:
            headers["Content-Type"] = "application/json"
        try:
            response = self._http.request(
                method, self.base_url + path, content=payload or None, headers=headers
            )
        except httpx.HTTPError as e:
            raise unreachable(self.base_url, "(this machine's identity, or SIKKERKEY_API_URL)", e) from e
        if response.status_code != 200:
            raise error_for_status(response.status_code, error_message(response))
        try:
            return response.json()
        except ValueError as e:
            raise SikkerError(f"malformed response from {self.base_url}{path}") from e

    def _field(self, data: Any, key: str, kind: type) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get(key), kind):
            raise SikkerError(f"malformed response from {self.base_url}: no {key!r}")
        return data[key]

    def get_secret(self, secret_id: str) -> str:
        """The current value of one secret (structured secrets: the JSON text of the object)."""
        data = self.request("GET", f"/v1/secret/{check_id('secret', secret_id)}")
        return str(self._field(data, "value", str))

    def list_secrets(self) -> list[dict[str, Any]]:
        """Metadata (id, name, fieldNames, projectId) of every secret granted to this machine."""
        return list(self._field(self.request("GET", "/v1/secrets"), "secrets", list))

    def list_by_project(self, project_id: str) -> list[dict[str, Any]]:
        """Like ``list_secrets`` for one project."""
        body = encode({"projectId": check_id("project", project_id)})
        return list(self._field(self.request("POST", "/v1/secrets/list", body), "secrets", list))

    def export(self, project_id: str | None = None) -> list[dict[str, Any]]:
        """Every granted secret with its value (id, name, value, fieldNames) in one round trip."""
        body = encode({"projectId": check_id("project", project_id)}) if project_id else None
        return list(self._field(self.request("POST", "/v1/secrets/export", body), "secrets", list))

    def poll(self, ids: list[str]) -> dict[str, Any]:
        """Changes since this machine last read each id: ``{id: {"status": ...}}``."""
        body = encode({"watch": [check_id("secret", i) for i in ids]})
        return dict(self._field(self.request("POST", "/v1/secrets/poll", body), "changes", dict))

    def cli_projects(self) -> list[dict[str, Any]]:
        """Projects this machine belongs to, with names and applications."""
        return list(self._field(self.request("GET", "/v1/cli/projects"), "projects", list))

    def cli_secrets(self) -> list[dict[str, Any]]:
        """Granted secrets with project names and type tags."""
        return list(self._field(self.request("GET", "/v1/cli/secrets"), "secrets", list))

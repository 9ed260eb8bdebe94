"""Audit routes: list with filters, export (JSON lines), checkpoints, proofs, public key.

``{chain}`` is a vault id, or ``system`` (root token only) for seal events and
failed authentications that belong to no vault.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from sikker.api import schema
from sikker.api.context import authed, authed_json, call, ok, services
from sikker.core import audit_verify
from sikker.core.audit import Actor
from sikker.core.model import AuditStream, Filters, Principal
from sikker.errors import InvalidInput
from sikker.service.audit import checkpoint_dict, record_dict

SEVERITIES = {"info", "low", "medium", "high", "critical"}


def _int(request: Request, name: str, default: int | None = None) -> int | None:
    return schema.query_int(request.query_params, name, default)


def _text(request: Request, name: str) -> str | None:
    value = request.query_params.get(name) or None
    if value is not None and len(value) > 128:
        raise InvalidInput(f"{name} is too long")
    return value


async def public_key(request: Request) -> Response:
    """The Ed25519 key that signs checkpoints (base64 of the raw 32 bytes) and its fingerprint
    (``sha256:`` + hex SHA-256 of the raw key), which ``sikker audit verify`` shows."""
    key_id, key = await call(services(request).audit.public_key)
    return ok(
        {
            "keyId": key_id,
            "publicKey": base64.b64encode(key).decode(),
            "fingerprint": audit_verify.fingerprint(key),
            "algorithm": "ed25519",
        }
    )


async def list_records(request: Request) -> Response:
    """Newest first; filters actor, action, secret, severity, since/until (epoch ms);
    page with ``before`` = the ``next`` of the previous page."""
    svc = services(request)

    def query(principal: Principal, _: Actor) -> dict[str, Any]:
        severity = _text(request, "severity")
        if severity is not None and severity not in SEVERITIES:
            raise InvalidInput(f"severity must be one of {', '.join(sorted(SEVERITIES))}")
        filters = Filters(
            actor=_text(request, "actor"),
            action=_text(request, "action"),
            secret=_text(request, "secret"),
            severity=severity,
            since_ms=_int(request, "since"),
            until_ms=_int(request, "until"),
        )
        limit = _int(request, "limit", 100) or 100
        found = svc.audit.query(
            principal, request.path_params["chain"], filters, _int(request, "before"), limit
        )
        records = [record_dict(s) for s in found]
        more = len(found) == min(limit, 1000) and found[-1].entry.seq > 1
        return {"records": records, "next": found[-1].entry.seq if found and more else None}

    return ok(await authed(request, query))


async def export(request: Request) -> Response:
    """JSON lines: a header, every record oldest first, then every checkpoint."""
    svc = services(request)

    def start(principal: Principal, _: Actor) -> tuple[Iterator[dict[str, Any]], dict[str, Any]]:
        lines = svc.audit.export(principal, request.path_params["chain"], _int(request, "since"))
        return lines, next(lines)  # fail before the 200 if access is refused

    lines, first = await authed(request, start)

    def body() -> Iterator[bytes]:
        yield orjson.dumps(first) + b"\n"
        for line in lines:
            yield orjson.dumps(line) + b"\n"

    return StreamingResponse(body(), media_type="application/x-ndjson")


async def list_checkpoints(request: Request) -> Response:
    svc, chain = services(request), request.path_params["chain"]
    found = await authed(request, lambda p, _: svc.audit.checkpoints(p, chain))
    return ok({"checkpoints": [checkpoint_dict(c) for c in found]})


async def _proof(
    request: Request, a: str, b: str, prove: Callable[[Principal, str, int, int], dict[str, Any]]
) -> Response:
    """``prove(principal, chain, <query a>, <query b>)``, both numbers required."""

    def run(principal: Principal, _: Actor) -> dict[str, Any]:
        first, second = _int(request, a), _int(request, b)
        if first is None or second is None:
            raise InvalidInput(f"{a} and {b} are required")
        return prove(principal, request.path_params["chain"], first, second)

    return ok(await authed(request, run))


async def inclusion(request: Request) -> Response:
    """RFC 6962 audit path proving record ``seq`` is in the tree of size ``treeSize``."""
    return await _proof(request, "seq", "treeSize", services(request).audit.inclusion)


async def consistency(request: Request) -> Response:
    """RFC 6962 proof that the tree of size ``first`` is a prefix of the tree of size ``second``."""
    return await _proof(request, "first", "second", services(request).audit.consistency)


ROUTES = [
    Route("/api/audit/public-key", public_key, methods=["GET"]),
    Route("/api/audit/{chain}", list_records, methods=["GET"]),
    Route("/api/audit/{chain}/export", export, methods=["GET"]),
    Route("/api/audit/{chain}/checkpoints", list_checkpoints, methods=["GET"]),
    Route("/api/audit/{chain}/proof/inclusion", inclusion, methods=["GET"]),
    Route("/api/audit/{chain}/proof/consistency", consistency, methods=["GET"]),
]


# -- streams --------------------------------------------------------------------------------------
def _stream(row: AuditStream) -> dict[str, Any]:
    return {
        "id": row.id,
        "vaultId": row.vault_id,
        "kind": row.kind,
        "config": row.config,
        "actions": row.actions,
        "minSeverity": row.min_severity,
        "attempts": row.attempts,
        "lastError": row.last_error,
        "createdAt": row.created_ms,
    }


STREAM_FIELDS = {
    "vaultId": schema.Field(str, max_len=64),
    "kind": schema.Field(str, required=True, max_len=16),
    "url": schema.Field(str, max_len=2048),
    "host": schema.Field(str, max_len=255),
    "port": schema.Field(int, min_value=1, max_value=65535),
    "protocol": schema.Field(str, max_len=8),
    "path": schema.Field(str, max_len=4096),
    "sender": schema.Field(str, max_len=255),
    "recipients": schema.Field(list, max_len=20),
    "starttls": schema.Field(bool),
    "actions": schema.Field(list, max_len=100),
    "minSeverity": schema.Field(str, max_len=16),
}
_KIND_KEYS = {
    "webhook": ("url",),
    "syslog": ("host", "port", "protocol"),
    "jsonl": ("path",),
    "email": ("host", "port", "sender", "recipients", "starttls"),
}


async def add_stream(request: Request) -> Response:
    """Stream audit records of one vault (or, root only, of every vault) to a sink.
    Webhooks get an HMAC secret, returned once."""
    svc = services(request)

    def add(principal: Principal, who: Actor, body: dict[str, Any]) -> tuple[AuditStream, str | None]:
        kind = body["kind"]
        if kind not in _KIND_KEYS:
            raise InvalidInput("kind must be webhook, syslog, jsonl or email")
        missing = [k for k in _KIND_KEYS[kind] if k not in body and k not in ("protocol", "starttls")]
        if missing:
            raise InvalidInput(f"a {kind} stream needs {', '.join(missing)}")
        config = {k: body[k] for k in _KIND_KEYS[kind] if k in body}
        actions = body.get("actions")
        if actions is not None and not all(isinstance(a, str) and len(a) <= 64 for a in actions):
            raise InvalidInput("'actions' must be a list of action names (a trailing * matches a prefix)")
        return svc.streams.add(
            principal, who, body.get("vaultId"), kind, config, actions, body.get("minSeverity", "info")
        )

    row, secret = await authed_json(request, STREAM_FIELDS, add)
    return ok(_stream(row) | ({"secret": secret} if secret else {}), 201)


async def list_streams(request: Request) -> Response:
    svc, vault = services(request), request.query_params.get("vault") or None
    found = await authed(request, lambda p, _: svc.streams.list_streams(p, vault))
    return ok({"streams": [_stream(s) for s in found]})


async def remove_stream(request: Request) -> Response:
    svc, stream = services(request), request.path_params["stream"]
    await authed(request, lambda p, w: svc.streams.remove(p, w, stream))
    return ok({"removed": request.path_params["stream"]})


async def stream_deliveries(request: Request) -> Response:
    """The delivery log of a stream, newest first."""
    svc, stream = services(request), request.path_params["stream"]
    found = await authed(
        request, lambda p, _: svc.streams.deliveries(p, stream, _int(request, "limit", 50) or 50)
    )
    return ok({"deliveries": found})


ROUTES[:0] = [
    Route("/api/audit-streams", add_stream, methods=["POST"]),
    Route("/api/audit-streams", list_streams, methods=["GET"]),
    Route("/api/audit-streams/{stream}", remove_stream, methods=["DELETE"]),
    Route("/api/audit-streams/{stream}/deliveries", stream_deliveries, methods=["GET"]),
]

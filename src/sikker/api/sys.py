"""Operator routes under /api/sys: status, health probes, init, unseal, seal, key rotation, backup."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import asdict

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from sikker import __version__
from sikker.api import schema
from sikker.api.context import actor, authed, call, ok, services
from sikker.api.errors import json_error
from sikker.core import permissions
from sikker.core.audit import Actor
from sikker.core.model import Principal
from sikker.errors import Unauthenticated
from sikker.service.backup import BackupFile
from sikker.service.base import require


def _status_body(request: Request) -> dict[str, object]:
    status = services(request).seal.status()
    return asdict(status) | {"version": __version__}


async def status(request: Request) -> Response:
    """Seal state and unseal progress; always answered, sealed or not."""
    return ok(await call(_status_body, request))


async def health(request: Request) -> Response:
    """200 when unsealed and serving; 503 otherwise (for load balancers). With an HSM seal,
    ``sealProvider`` says whether the HSM can be used now (the server serves either way: its
    root key is in memory)."""
    body = await call(_status_body, request)
    if not body["initialized"] or body["sealed"]:
        return json_error(503, "sealed" if body["initialized"] else "not initialised")
    answer: dict[str, object] = {"status": "ok"}
    provider = await call(services(request).health.seal_provider)
    if provider is not None:
        answer["sealProvider"] = {"kind": provider.kind, "ok": provider.ok, "error": provider.error}
    return ok(answer)


async def live(request: Request) -> Response:
    """Liveness: 200 while the process serves HTTP. Nothing else is checked (a sealed node or
    a store that is down is alive; restarting it would not help)."""
    return ok({"status": "alive"})


async def ready(request: Request) -> Response:
    """Readiness: 200 when unsealed and the store answers within a bound (2 s); otherwise 503
    ``{"error": "sealed"}`` or ``{"error": "store unreachable"}``."""
    reason = await call(services(request).health.unready_because)
    return ok({"status": "ready"}) if reason is None else json_error(503, reason)


INIT_FIELDS = {
    "shares": schema.Field(int, min_value=1, max_value=255),
    "threshold": schema.Field(int, min_value=1, max_value=255),
}


async def init(request: Request) -> Response:
    """Initialise once: returns the unseal shares (default 5, threshold 3) and the root token,
    never again. A server with a seal key file has no shares: it answers where its key is
    (``sealKeyFile``, the path, never the key) and refuses ``shares``/``threshold``."""
    body = schema.parse(await request.body(), INIT_FIELDS)
    svc = services(request)
    result = await call(svc.seal.init, body.get("shares"), body.get("threshold"), actor(request))
    return ok({"shares": result.shares, "rootToken": result.root_token, "sealKeyFile": result.key_location})


UNSEAL_FIELDS = {"share": schema.Field(str, max_len=1024), "reset": schema.Field(bool)}


async def unseal(request: Request) -> Response:
    """Submit one unseal share, or ``{"reset": true}`` (root token) to start over.

    Throttled per source address and audited, accepted or not (see SealService)."""
    svc = services(request)
    await call(svc.seal.admit, actor(request))
    body = schema.parse(await request.body(), UNSEAL_FIELDS)
    if body.get("reset"):
        try:
            state = await authed(request, svc.seal.reset_progress)
        except Unauthenticated:  # not the root token: refused, and audited, by reset_progress
            state = await call(svc.seal.reset_progress, None, actor(request))
    elif "share" in body:
        state = await call(svc.seal.submit_share, body["share"], actor(request))
    else:
        return json_error(400, 'send {"share": "..."} or {"reset": true}')
    return ok(asdict(state))


async def seal(request: Request) -> Response:
    """Seal the server: forget the root key until the next unseal. Root token only."""
    svc = services(request)

    def seal_now(principal: Principal, who: Actor) -> None:
        require(principal, permissions.SEAL_MANAGE, None)
        svc.seal.seal(who)

    await authed(request, seal_now)
    return ok({"sealed": True})


ROTATE_FIELDS = {"projectId": schema.Field(str, max_len=64)}


async def rotate_keys(request: Request) -> Response:
    """New project key versions (all projects, or one), then rewrap every data key."""
    svc, raw = services(request), await request.body()
    report = await authed(
        request, lambda p, w: svc.keys.rotate(p, w, schema.parse(raw, ROTATE_FIELDS).get("projectId"))
    )
    return ok({"projects": report.projects, "rewrapped": report.rewrapped})


BACKUP_READ_BYTES = 64 * 1024


async def backup(request: Request) -> Response:
    """Stream an encrypted backup of the whole store (root token). The server keeps serving;
    the backup is one consistent snapshot. ``X-Sikker-Backup-Sha256`` is the checksum the
    file's trailer holds (also in the audit record)."""
    svc, raw = services(request), await request.body()

    def create(principal: Principal, who: Actor) -> BackupFile:
        schema.parse(raw, {})
        return svc.backup.create(principal, who)

    made = await authed(request, create)

    async def chunks() -> AsyncIterator[bytes]:
        try:
            while chunk := await run_in_threadpool(made.file.read, BACKUP_READ_BYTES):
                yield chunk
        finally:
            made.file.close()

    headers = {
        "content-length": str(made.size),
        "content-disposition": 'attachment; filename="sikker.backup"',
        "x-sikker-backup-sha256": made.sha256,
        "x-sikker-backup-rows": str(made.rows),
    }
    return StreamingResponse(chunks(), media_type="application/octet-stream", headers=headers)


# Routes answered while sealed.
UNSEALED_NOT_REQUIRED = {
    "/api/sys/status",
    "/api/sys/health",
    "/api/sys/health/live",
    "/api/sys/health/ready",
    "/api/sys/init",
    "/api/sys/unseal",
    "/api/openapi.json",  # api/openapi.py: describes the API, holds nothing of the store
}

ROUTES = [
    Route("/api/sys/status", status, methods=["GET"]),
    Route("/api/sys/health", health, methods=["GET"]),
    Route("/api/sys/health/live", live, methods=["GET"]),
    Route("/api/sys/health/ready", ready, methods=["GET"]),
    Route("/api/sys/init", init, methods=["POST"]),
    Route("/api/sys/unseal", unseal, methods=["POST"]),
    Route("/api/sys/seal", seal, methods=["POST"]),
    Route("/api/sys/rotate-keys", rotate_keys, methods=["POST"]),
    Route("/api/sys/backup", backup, methods=["POST"]),
]

"""Per-request helpers: who is calling, from where, and running service calls off the event loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from sikker.api.observe import note_principal
from sikker.core.audit import Actor
from sikker.core.model import Principal
from sikker.service.bootstrap import Services

T = TypeVar("T")


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


def actor(request: Request, principal: Principal | None = None) -> Actor:
    ip = request.client.host if request.client else ""
    ua = request.headers.get("user-agent", "")
    if principal is None:
        return Actor("anonymous", "-", ip, ua)
    return Actor(principal.kind, principal.user_id or principal.token_id, ip, ua)


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    return request.headers.get("x-sikker-token")


async def call(fn: Callable[..., T], *args: Any) -> T:
    return await run_in_threadpool(fn, *args)


async def authed(request: Request, fn: Callable[[Principal, Actor], T]) -> T:
    """Authenticate the caller, then run ``fn(principal, actor)``, in ONE worker thread: a route
    pays one thread hop, not two. ``fn`` parses what it needs of the request after the check, so
    an unauthenticated request is refused (401) before its body is looked at."""
    svc = services(request)
    token, anonymous = bearer(request), actor(request)
    found: list[Actor] = []

    def run() -> T:
        principal = svc.tokens.authenticate(token, anonymous)
        found.append(actor(request, principal))
        return fn(principal, found[0])

    try:
        return await call(run)
    finally:
        if found:
            note_principal(found[0].kind, found[0].id)


def ok(payload: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json")

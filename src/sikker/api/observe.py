"""Per request, outermost: a request id, one access-log line, the request metrics.

The request id is the caller's ``X-Request-Id`` when it is short and plain
(``[A-Za-z0-9._-]{1,64}``), else a fresh random one. It is returned in the ``X-Request-Id``
response header and set in ``core.audit.REQUEST_ID`` while the request is served, so every
audit record the request writes carries it (``target["request_id"]``).

The access-log line (logger ``sikker.access``, level info) names the method, the path (the
route template where a path segment is a credential, e.g. ``/v1/bootstrap/{token}``; never
the query string), the route template, status, duration, response bytes, client address,
request id and, once known, the principal. It never holds a header, a body, a token or a
value.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sikker.core.audit import REQUEST_ID

access_log = logging.getLogger("sikker.access")

HEADER = b"x-request-id"
_PLAIN_ID = re.compile(rb"[A-Za-z0-9._-]{1,64}")
UNMATCHED = "unmatched"
READ_LANE_ROUTE = "/v1/secret/{secret}"
# Routes whose path parameters are credentials: the log shows the template, not the path.
CREDENTIAL_ROUTES = frozenset({"/v1/bootstrap/{token}"})
CREDENTIAL_PREFIXES = ("/v1/bootstrap/",)
MAX_LOGGED_PATH = 256
SIGNED_PREFIXES = ("/v1/secret", "/v1/cli/")  # machine routes every request of which is signed


class RequestInfo:
    """What the layers below learn about the request being served (its principal)."""

    __slots__ = ("id", "principal_id", "principal_kind")

    def __init__(self, request_id: str) -> None:
        self.id = request_id
        self.principal_kind = ""
        self.principal_id = ""


CURRENT: ContextVar[RequestInfo | None] = ContextVar("sikker_request", default=None)


def note_principal(kind: str, principal_id: str) -> None:
    """Record who the request authenticated as (for its access-log line)."""
    info = CURRENT.get()
    if info is not None:
        info.principal_kind = kind
        info.principal_id = principal_id[:64]


def request_id(headers: list[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name == HEADER:
            if _PLAIN_ID.fullmatch(value):
                return value.decode("ascii")
            break
    # Not a secret (it is returned and logged): no system call per request for it.
    return f"{random.getrandbits(64):016x}"


def route_template(scope: Scope) -> str:
    """The template of the route that answered (bounded: safe as a metrics label)."""
    path = getattr(scope.get("route"), "path", None)
    if path:
        return str(path)
    return str(scope.get("sikker.route", UNMATCHED))  # set by the raw ASGI routes (read lane, /metrics)


def logged_path(scope: Scope, template: str) -> str:
    if template in CREDENTIAL_ROUTES:
        return template
    path: str = scope["path"]
    if template == UNMATCHED and path.startswith(CREDENTIAL_PREFIXES):
        return path[: path.index("/", 1) + 1] + "..."  # e.g. a mistyped bootstrap URL
    return path[:MAX_LOGGED_PATH]


# (method, template, status, seconds): the metrics, when they are on (api/metrics.py).
Recorder = Callable[[str, str, int, float], None]


class Observe:
    def __init__(self, app: ASGIApp, record: Recorder | None = None) -> None:
        self.app = app
        self.record = record

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        rid = request_id(scope["headers"])
        rid_header = (HEADER, rid.encode("ascii"))
        info = RequestInfo(rid)
        info_token = CURRENT.set(info)
        rid_token = REQUEST_ID.set(rid)
        status = 500  # an exception before the response started: the server answers 500
        sent = 0

        async def observed_send(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), rid_header]
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            REQUEST_ID.reset(rid_token)
            CURRENT.reset(info_token)
            seconds = time.perf_counter() - start
            template = route_template(scope)
            if self.record is not None:
                self.record(scope["method"], template, status, seconds)
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(
                    "request", extra={"access": _line(scope, template, info, status, seconds, sent)}
                )


def _line(
    scope: Scope, template: str, info: RequestInfo, status: int, seconds: float, sent: int
) -> dict[str, Any]:
    client = scope.get("client")
    line: dict[str, Any] = {
        "request_id": info.id,
        "method": scope["method"],
        "path": logged_path(scope, template),
        "route": template,
        "status": status,
        "duration_ms": round(seconds * 1000, 3),
        "bytes": sent,
        "client": client[0] if client else "",
    }
    if info.principal_kind:
        line["principal_kind"] = info.principal_kind
        line["principal_id"] = info.principal_id
    elif 200 <= status < 300 and template.startswith(SIGNED_PREFIXES):
        # A signed machine request that succeeded: its X-Machine-Id was verified.
        for name, value in scope["headers"]:
            if name == b"x-machine-id":
                line["principal_kind"] = "machine"
                line["principal_id"] = value[:64].decode("latin-1").strip().lower()
                break
    return line

"""Bounds checked before any parsing: body size (declared and actual), control characters in
the URL."""

from __future__ import annotations

from urllib.parse import unquote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sikker.api.errors import error_response
from sikker.core.values import has_control
from sikker.errors import InvalidInput, PayloadTooLarge


class PlainUrl:
    """Refuse control characters (C0, DEL, C1) in the decoded path or query string: 400.

    What is checked is what the routes see: the path as the server decoded it, the query as
    Starlette decodes it. A NUL never reaches the store (PostgreSQL refuses it in text)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (
            has_control(scope["path"])
            or (scope["query_string"] and has_control(unquote(scope["query_string"].decode("latin-1"))))
        ):
            await error_response(InvalidInput("control characters are not allowed in the URL"))(
                scope, receive, send
            )
            return
        await self.app(scope, receive, send)


class BodyLimit:
    """Refuse bodies over ``max_bytes``: at once if Content-Length says so, else while reading."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and (
                not value.isdigit() or len(value) > 18 or int(value) > self.max_bytes
            ):
                await error_response(PayloadTooLarge(f"request body exceeds {self.max_bytes} bytes"))(
                    scope, receive, send
                )
                return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise PayloadTooLarge(f"request body exceeds {self.max_bytes} bytes")
            return message

        await self.app(scope, counted, send)

"""The one place where errors become HTTP responses: ``{"error": "<message>"}``.

Unexpected exceptions are logged server-side with their traceback and answered
with a bare 500; no traceback or internal detail ever reaches a client.
"""

from __future__ import annotations

import logging

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from sikker.errors import SikkerError

log = logging.getLogger("sikker.api")

JSON = "application/json"


def json_error(status: int, message: str) -> Response:
    return Response(orjson.dumps({"error": message}), status_code=status, media_type=JSON)


def error_response(exc: SikkerError) -> Response:
    if exc.http_status >= 500 and exc.__cause__ is not None:
        log.warning("%s: %s (cause: %s)", type(exc).__name__, exc.message, type(exc.__cause__).__name__)
    return json_error(exc.http_status, exc.message)


async def on_sikker_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SikkerError)
    return error_response(exc)


async def on_http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    messages = {404: "no such route", 405: "method not allowed"}
    return json_error(exc.status_code, messages.get(exc.status_code, str(exc.detail)))


async def on_unexpected(_request: Request, exc: Exception) -> Response:
    log.error("unexpected error", exc_info=exc)
    return json_error(500, "internal error")


HANDLERS = {SikkerError: on_sikker_error, HTTPException: on_http_error, Exception: on_unexpected}

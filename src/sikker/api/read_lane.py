"""``GET /v1/secret/{id}`` through the read lane (service/read_lane.py), before the router.

Raw ASGI: no request object, no routing, no thread hop when the read plan is cached. Any
request the lane does not serve as a plain allowed read (and any it hands back) continues to
the router untouched, where the full path answers it, refusals audited as always.
"""

from __future__ import annotations

import orjson
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from sikker.api.errors import error_response, json_error
from sikker.api.machine import signed_from_scope
from sikker.api.observe import READ_LANE_ROUTE
from sikker.errors import SikkerError
from sikker.service.read_lane import RETRY, ReadLane

PREFIX = "/v1/secret/"
NO_BODY = frozenset({b"content-length", b"transfer-encoding"})


class ReadLaneRoute:
    def __init__(self, app: ASGIApp, lane: ReadLane) -> None:
        self.app = app
        self.lane = lane

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = None
        if scope["type"] == "http" and scope["method"] == "GET" and scope["path"].startswith(PREFIX):
            response = await self._read(scope)
        if response is None:
            await self.app(scope, receive, send)
        else:
            await response(scope, receive, send)

    async def _read(self, scope: Scope) -> Response | None:
        secret_id = scope["path"][len(PREFIX) :]
        if not secret_id or "/" in secret_id or len(secret_id) > 64:
            return None
        # A body would have to be read here, and then the router could not read it again.
        if any(name in NO_BODY and value != b"0" for name, value in scope["headers"]):
            return None
        req = signed_from_scope(scope, b"")
        if req.malformed:
            return None
        lane = self.lane
        try:
            plan = await lane.plan(req.machine_id, secret_id)
            if plan is None:
                return None
            now = lane.deps.clock()
            value = lane.open(plan, req, now)
            if value is None:
                return None
            outcome = await lane.commit(plan, req, now)
        except SikkerError as e:
            return error_response(e)
        if outcome == RETRY:
            return None
        if isinstance(outcome, SikkerError):
            return error_response(outcome)
        if isinstance(outcome, BaseException):
            return json_error(500, "internal error")
        scope["sikker.route"] = READ_LANE_ROUTE  # served here: for the access log and metrics
        return Response(orjson.dumps({"value": value.decode()}), media_type="application/json")

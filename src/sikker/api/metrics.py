"""``GET /metrics``: Prometheus text format (docs/operator/observability.md).

Served on the main listener (before the seal gate: a sealed server is worth watching), or, with
``metrics_listen``, only on a listener of its own in every worker (``SO_REUSEPORT``: any worker
answers, with the same multiprocess view). Without ``metrics_token_file`` a scrape needs no
credential; the series hold no ids or names, but they do show traffic and the seal state.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import socket
import socketserver
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from sikker import metrics
from sikker.api.errors import json_error
from sikker.api.observe import READ_LANE_ROUTE
from sikker.errors import InvalidInput, SikkerError
from sikker.service.bootstrap import Services
from sikker.service.health import SEAL_CHECK_INTERVAL_S

PATH = "/metrics"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
READ_REFUSALS = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    423: "frozen",
    429: "throttled",
    503: "unavailable",
}


class Recorder:
    """The request series, fed by api/observe.py once per request (label children cached)."""

    def __init__(self) -> None:
        self._children: dict[tuple[str, str, int], tuple[Any, Any, Any]] = {}

    def __call__(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = self._make(*key)
        count, duration, read = found
        count.inc()
        duration.observe(seconds)
        if read is not None:
            read.inc()

    @staticmethod
    def _make(method: str, route: str, status: int) -> tuple[Any, Any, Any]:
        method = method if method in METHODS else "OTHER"
        read = None
        if route == READ_LANE_ROUTE and method == "GET":
            reason = "" if status == 200 else READ_REFUSALS.get(status, "error")
            read = metrics.SIGNED_READS.labels("served" if status == 200 else "refused", reason)
        return (
            metrics.HTTP_REQUESTS.labels(method, route, f"{status // 100}xx"),
            metrics.HTTP_DURATION.labels(method, route),
            read,
        )


class _Global:
    """This process's series (single-process mode) inside a per-app registry."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


class _AtScrape:
    """Whole-server gauges computed when scraped, with bounded store queries."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def collect(self) -> Iterator[Metric]:
        svc = self.services
        yield GaugeMetricFamily(
            "sikker_sealed", "1 while this server is sealed.", value=int(svc.deps.keyring.sealed)
        )
        provider = svc.health.seal_provider(SEAL_CHECK_INTERVAL_S)
        if provider is not None:
            up = GaugeMetricFamily(
                "sikker_seal_provider_up", "1 when the seal provider (HSM) can be used.", labels=["kind"]
            )
            up.add_metric([provider.kind], int(provider.ok))
            yield up
        try:
            overdue = svc.rotation.overdue()
            backlog = svc.streams.backlog()
        except SikkerError:
            yield GaugeMetricFamily("sikker_store_up", "1 when the store answered this scrape.", value=0)
            return
        yield GaugeMetricFamily("sikker_store_up", "1 when the store answered this scrape.", value=1)
        yield GaugeMetricFamily(
            "sikker_rotations_overdue",
            "Scheduled rotations still not run 5 minutes after they fell due (counted up to 10000).",
            value=overdue,
        )
        yield GaugeMetricFamily(
            "sikker_audit_stream_backlog_records",
            "Audit records not yet delivered, over every stream and chain it follows.",
            value=backlog,
        )


def registry(services: Services) -> CollectorRegistry:
    found = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(found)  # type: ignore[no-untyped-call]  # every worker's
    else:
        found.register(_Global())
    found.register(_AtScrape(services))
    return found


def read_token(services: Services) -> bytes | None:
    """The SHA-256 of the bearer token scrapes must carry, or None (no token needed)."""
    path = services.deps.settings.metrics_token_file
    if path is None:
        return None
    try:
        token = path.read_text().strip()
    except OSError as e:
        raise InvalidInput(f"cannot read metrics_token_file {path}: {e.strerror}") from e
    if not token:
        raise InvalidInput(f"metrics_token_file {path} is empty")
    return hashlib.sha256(token.encode()).digest()


def allowed(expected: bytes | None, authorization: str) -> bool:
    if expected is None:
        return True
    given = authorization[7:].strip() if authorization[:7].lower() == "bearer " else ""
    return hmac.compare_digest(hashlib.sha256(given.encode()).digest(), expected)


class MetricsRoute:
    """Answers GET /metrics on the main listener; everything else goes on."""

    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.registry = registry(services)
        self.token = read_token(services)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH:
            await self.app(scope, receive, send)
            return
        scope["sikker.route"] = PATH
        if scope["method"] not in ("GET", "HEAD"):
            response = json_error(405, "method not allowed")
        else:
            authorization = next(
                (v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), ""
            )
            if not allowed(self.token, authorization):
                response = json_error(401, "a bearer token is required for /metrics")
            else:
                body = await run_in_threadpool(generate_latest, self.registry)
                response = Response(body, media_type=CONTENT_TYPE_LATEST)
        await response(scope, receive, send)


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # the main access log is ours
        pass


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_port = True  # one listener per worker on the same port


def serve_separately(services: Services, listen: str) -> Callable[[], None]:
    """Serve /metrics on ``listen`` (HOST:PORT) in a thread; returns the stop function."""
    from sikker.config import parse_listen

    host, port = parse_listen(listen)
    reg = registry(services)
    token = read_token(services)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        if environ.get("PATH_INFO") != PATH:
            start_response("404 Not Found", [("Content-Type", "application/json")])
            return [b'{"error": "no such route"}']
        if not allowed(token, environ.get("HTTP_AUTHORIZATION", "")):
            start_response("401 Unauthorized", [("Content-Type", "application/json")])
            return [b'{"error": "a bearer token is required for /metrics"}']
        start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
        return [generate_latest(reg)]

    server_class = type(
        "_Server", (_Server,), {"address_family": socket.AF_INET6 if ":" in host else socket.AF_INET}
    )
    server: WSGIServer = make_server(host, port, app, server_class=server_class, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, name="sikker-metrics", daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return stop

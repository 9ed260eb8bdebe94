"""The ASGI application: limits first, then the seal gate, then routing.

Observe (request id, access log, metrics) -> /metrics -> BodyLimit -> SealGate -> PlainUrl (no control
characters) -> read lane (GET /v1/secret/{id})
-> Starlette router (admin plane /api, operator /api/sys, machine plane /v1, web console /ui)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from sikker.api import (
    admin,
    audit,
    canaries,
    dynamic,
    jwt_roles,
    machine,
    machines_admin,
    openapi,
    people,
    rotation,
    sys,
)
from sikker.api.errors import HANDLERS, error_response
from sikker.api.limits import BodyLimit, PlainUrl
from sikker.api.metrics import MetricsRoute, Recorder, serve_separately
from sikker.api.observe import Observe
from sikker.api.read_lane import ReadLaneRoute
from sikker.errors import Sealed, SikkerError
from sikker.service.bootstrap import Services
from sikker.service.health import SEAL_CHECK_INTERVAL_S
from sikker.service.lease_jobs import Swept
from sikker.ui import ROUTES as CONSOLE_ROUTES

log = logging.getLogger("sikker.server")

MAINTENANCE_INTERVAL_S = 300.0
CHECKPOINT_POLL_S = 2.0
STREAM_POLL_S = 0.5
SCHEDULER_POLL_S = 5.0
CLUSTER_POLL_S = 1.0
AUTH_FAILURES_POLL_S = 5.0


class SealGate:
    """While sealed, answer 503 on everything but status, health, init and unseal."""

    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.keyring = services.deps.keyring
        self.seal = services.seal

    def _sealed_error(self) -> Sealed:
        """Say what unseals this server (its seal kind is read once); plain Sealed if the store
        cannot tell."""
        try:
            return self.seal.sealed_error()
        except SikkerError:
            return Sealed()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.keyring.sealed and scope["path"] not in sys.UNSEALED_NOT_REQUIRED:
            await error_response(await run_in_threadpool(self._sealed_error))(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def _every(
    interval: float,
    job: Callable[[], object],
    name: str,
    sooner: Callable[[object], float | None] | None = None,
) -> None:
    """Run a background job every ``interval`` seconds, counted from the start of each run
    (first run after one interval); earlier when ``sooner(result)`` names fewer seconds
    (0: at once, work is left).

    Store trouble is logged and retried on the next run; the job never stops the server."""
    clock = asyncio.get_running_loop().time
    await asyncio.sleep(interval)
    while True:
        started = clock()
        result: object = None
        try:
            result = await run_in_threadpool(job)
        except SikkerError as e:
            log.warning("%s skipped: %s", name, e.message)
        wait = interval - (clock() - started)
        early = sooner(result) if sooner is not None else None
        if early is not None and early < wait:
            wait = early
        if wait <= 0:
            continue
        await asyncio.sleep(wait)


def _maintenance(services: Services) -> None:
    """Forget expired auth throttles and sign-in failure counts; purge old trash, finish
    interrupted rewraps, forget expired nonces (when unsealed)."""
    services.plane.sweep_lockouts()
    services.people.forget_failures()
    if not services.deps.keyring.sealed:
        services.secrets.purge_trash()
        services.keys.rewrap_all()
        services.plane.purge_nonces()
        services.jwt.prune()


def create_app(services: Services, maintenance_interval: float = MAINTENANCE_INTERVAL_S) -> ASGIApp:
    settings = services.deps.settings

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        jobs = [
            (maintenance_interval, lambda: _maintenance(services), "maintenance"),
            (CHECKPOINT_POLL_S, services.audit.checkpoint_due, "audit checkpoint"),
            (STREAM_POLL_S, services.streams.dispatch_due, "audit streams"),
            (SCHEDULER_POLL_S, services.rotation.run_due, "rotation scheduler"),
            # The poll behind LISTEN/NOTIFY: seal at most CLUSTER_POLL_S after another node did.
            (CLUSTER_POLL_S, services.seal.follow_cluster, "cluster check"),
            (AUTH_FAILURES_POLL_S, services.tokens.flush_failures, "auth failure counts"),
            (SEAL_CHECK_INTERVAL_S, services.health.check_seal_provider, "seal provider check"),
        ]
        tasks = [asyncio.create_task(_every(interval, job, name)) for interval, job, name in jobs]
        tasks.append(
            asyncio.create_task(
                _every(
                    float(services.deps.settings.lease_sweep_interval_seconds),
                    services.leases.sweep,
                    "lease sweeper",
                    sooner=lambda swept: (
                        swept.wait_s(services.deps.clock()) if isinstance(swept, Swept) else None
                    ),
                )
            )
        )
        stop_following = services.follow_cluster()
        stop_metrics = (
            serve_separately(services, settings.metrics_listen)
            if settings.metrics and settings.metrics_listen
            else None
        )
        try:
            yield
        finally:
            if stop_metrics is not None:
                stop_metrics()
            for task in tasks:
                task.cancel()
            stop_following()
            services.reads.stop()
            try:  # counts of failed authentications still held: not lost at shutdown
                services.tokens.flush_failures(everything=True)
            except SikkerError as e:
                log.warning("auth failure counts not written at shutdown: %s", e.message)

    router = Starlette(
        routes=[
            *sys.ROUTES,
            *admin.ROUTES,
            *machines_admin.ROUTES,
            *audit.ROUTES,
            *rotation.ROUTES,
            *canaries.ROUTES,
            *people.ROUTES,
            *jwt_roles.ROUTES,
            *dynamic.ROUTES,
            *machine.ROUTES,
            *openapi.ROUTES,
            *CONSOLE_ROUTES,  # the web console (/ui): the same services, the person's own principal
        ],
        exception_handlers=HANDLERS,
        lifespan=lifespan,
    )
    router.state.services = services
    lane = PlainUrl(ReadLaneRoute(router, services.reads))
    app: ASGIApp = BodyLimit(SealGate(lane, services), settings.max_body_bytes)
    if settings.metrics and not settings.metrics_listen:
        app = MetricsRoute(app, services)  # before the seal gate: answered while sealed
    return Observe(app, Recorder() if settings.metrics else None)

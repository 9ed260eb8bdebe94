"""The ASGI application: limits first, then the seal gate, then routing.

BodyLimit -> SealGate -> Starlette router (admin plane /api, operator /api/sys)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from sikker.api import admin, audit, canaries, machine, machines_admin, rotation, sys
from sikker.api.errors import HANDLERS, error_response
from sikker.api.limits import BodyLimit
from sikker.errors import Sealed, SikkerError
from sikker.service.bootstrap import Services
from sikker.storage.notifier import Listener

log = logging.getLogger("sikker.server")

MAINTENANCE_INTERVAL_S = 300.0
CHECKPOINT_POLL_S = 2.0
STREAM_POLL_S = 0.5
SCHEDULER_POLL_S = 5.0
CLUSTER_POLL_S = 1.0


class SealGate:
    """While sealed, answer 503 on everything but status, health, init and unseal."""

    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.keyring = services.deps.keyring

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.keyring.sealed and scope["path"] not in sys.UNSEALED_NOT_REQUIRED:
            await error_response(Sealed())(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def _checkpoints(services: Services, interval: float) -> None:
    """Sign audit checkpoints when enough records (or time) have accumulated."""
    while True:
        await asyncio.sleep(interval)
        try:
            await run_in_threadpool(services.audit.checkpoint_due)
        except SikkerError as e:
            log.warning("audit checkpoint skipped: %s", e.message)


async def _streams(services: Services, interval: float) -> None:
    """Deliver new audit records to the configured streams."""
    while True:
        await asyncio.sleep(interval)
        try:
            await run_in_threadpool(services.streams.dispatch_due)
        except SikkerError as e:
            log.warning("audit streams skipped: %s", e.message)


async def _scheduler(services: Services, interval: float) -> None:
    """Run due rotations (each claimed once, see service/rotation.py)."""
    while True:
        await asyncio.sleep(interval)
        try:
            await run_in_threadpool(services.rotation.run_due)
        except SikkerError as e:
            log.warning("rotation scheduler skipped: %s", e.message)


async def _follow_cluster(services: Services, interval: float) -> None:
    """Seal when another node sealed (the poll behind LISTEN/NOTIFY: at most ``interval`` late)."""
    while True:
        await asyncio.sleep(interval)
        try:
            await run_in_threadpool(services.seal.follow_cluster)
        except SikkerError as e:
            log.warning("cluster check skipped: %s", e.message)


async def _maintenance(services: Services, interval: float) -> None:
    """Purge old trash and finish interrupted rewraps, whenever unsealed."""
    while True:
        if not services.deps.keyring.sealed:
            try:
                await run_in_threadpool(services.secrets.purge_trash)
                await run_in_threadpool(services.keys.rewrap_all)
                await run_in_threadpool(services.plane.purge_nonces)
            except SikkerError as e:
                log.warning("maintenance skipped: %s", e.message)
        await asyncio.sleep(interval)


def create_app(services: Services, maintenance_interval: float = MAINTENANCE_INTERVAL_S) -> ASGIApp:
    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        tasks = [
            asyncio.create_task(_maintenance(services, maintenance_interval)),
            asyncio.create_task(_checkpoints(services, CHECKPOINT_POLL_S)),
            asyncio.create_task(_streams(services, STREAM_POLL_S)),
            asyncio.create_task(_scheduler(services, SCHEDULER_POLL_S)),
            asyncio.create_task(_follow_cluster(services, CLUSTER_POLL_S)),
        ]
        listener = None
        if not services.deps.db.is_sqlite:
            listener = Listener(services.deps.db.url, lambda _event: services.seal.follow_cluster())
            listener.start()
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            if listener is not None:
                listener.stop()

    router = Starlette(
        routes=[
            *sys.ROUTES,
            *admin.ROUTES,
            *machines_admin.ROUTES,
            *audit.ROUTES,
            *rotation.ROUTES,
            *canaries.ROUTES,
            *machine.ROUTES,
        ],
        exception_handlers=HANDLERS,
        lifespan=lifespan,
    )
    router.state.services = services
    return BodyLimit(SealGate(router, services), services.deps.settings.max_body_bytes)

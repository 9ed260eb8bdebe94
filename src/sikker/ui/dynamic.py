"""Console pages of dynamic secrets and their leases: a definition with its live leases, and a
vault's lease list (filtered, paged by the service's cursor) with revoke and renew buttons.

Every handler calls the admin API's service method (``DynamicService``, ``LeaseService``) with
the person's Principal. No page ever holds a lease password or the admin credential: the
definition names its admin secret by id only."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from sikker.core import dynamic
from sikker.core import permissions as perm
from sikker.errors import InvalidInput
from sikker.ui.secrets import can
from sikker.ui.vaults import _vault
from sikker.ui.web import Ctx, redirect

LEASE_PAGE = 50
_FILTERS = (("dynamic", "dynamic_secret_id"), ("machine", "machine_id"), ("state", "state"))


def _id(ctx: Ctx, name: str) -> str:
    """An id-like query value: short ASCII, as the admin API's lease list accepts."""
    value = ctx.query(name, 64)
    if value and not value.isascii():
        raise InvalidInput(f"{name} is not a valid value")
    return value


async def definition(ctx: Ctx) -> Response:
    """GET /ui/dynamic/{secret}: the definition (never a password) and its active leases."""
    d, live = await ctx.call(ctx.svc.dynamic.get, ctx.principal, ctx.param("secret"))
    proj = await ctx.call(ctx.svc.vaults.get_project, ctx.principal, d.project_id)
    can_read = can(ctx.principal, perm.LEASE_READ, d.vault_id, d.project_id)
    leases: list[Any] = []
    more = False
    if can_read:
        filters = {"dynamic_secret_id": d.id, "state": "active", "limit": LEASE_PAGE}
        leases, cursor = await ctx.call(ctx.svc.leases.list_leases, ctx.principal, d.vault_id, filters)
        more = cursor is not None
    return ctx.render(
        "dynamic.html",
        d=d,
        live=live,
        project=proj,
        leases=leases,
        more=more,
        can_read=can_read,
        can_manage=can(ctx.principal, perm.LEASE_MANAGE, d.vault_id, d.project_id),
    )


async def leases(ctx: Ctx) -> Response:
    """GET /ui/vaults/{vault}/leases?state=&dynamic=&machine=&cursor=: one page of leases."""
    vault_id = ctx.param("vault")
    shown = {param: _id(ctx, param) for param, _ in _FILTERS}
    filters: dict[str, Any] = {key: shown[param] for param, key in _FILTERS if shown[param]}
    filters["limit"] = LEASE_PAGE
    cursor = _id(ctx, "cursor")
    if cursor:
        filters["after"] = cursor
    found, next_cursor = await ctx.call(ctx.svc.leases.list_leases, ctx.principal, vault_id, filters)
    return ctx.render(
        "leases.html",
        vault=await _vault(ctx, vault_id),
        leases=found,
        shown=shown,
        cursor=cursor,
        next_cursor=next_cursor,
        states=dynamic.STATES,
        can_manage={
            lease.id for lease in found if can(ctx.principal, perm.LEASE_MANAGE, vault_id, lease.project_id)
        },
    )


def _back(ctx: Ctx, lease: Any) -> Response:
    """Back to the page the button was on (only console pages of this lease's vault or secret)."""
    back = ctx.form.get("back", max_len=600)
    allowed = (f"/ui/vaults/{lease.vault_id}/leases", f"/ui/dynamic/{lease.dynamic_secret_id}")
    if any(back == a or back.startswith(a + "?") for a in allowed):
        return redirect(back)
    return redirect(f"/ui/vaults/{lease.vault_id}/leases")


async def revoke(ctx: Ctx) -> Response:
    """POST /ui/leases/{lease}/revoke {reason?}: queued and attempted at once, as the admin
    API's revoke with ``sync``; a database that is down leaves it 'revoking' for the sweeper."""
    reason = ctx.form.get("reason", max_len=500).strip()
    lease = await ctx.call(
        ctx.svc.leases.revoke_admin, ctx.principal, ctx.actor, ctx.param("lease"), reason, True
    )
    return _back(ctx, lease)


async def renew(ctx: Ctx) -> Response:
    """POST /ui/leases/{lease}/renew {ttl?}: never past issue time + the definition's max TTL."""
    ttl = ctx.form.int("ttl", 1, dynamic.MAX_TTL_S) if ctx.form.get("ttl", max_len=12) else None
    lease = await ctx.call(ctx.svc.leases.renew_admin, ctx.principal, ctx.actor, ctx.param("lease"), ttl)
    return _back(ctx, lease)

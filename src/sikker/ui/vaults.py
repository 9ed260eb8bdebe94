"""Console pages of a vault: machines (approve, disable, enable, revoke), the grants matrix of a
project, enrollment tokens, the audit log with verification, canaries (unfreeze), members and
the dashboard. Each action calls the admin API's service method, with the person's Principal."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from sikker.core import audit_verify, values
from sikker.core import permissions as perm
from sikker.core.model import Filters
from sikker.errors import InvalidInput, NotFound
from sikker.ui.secrets import PAGE_SIZE, can
from sikker.ui.web import Ctx, redirect

AUDIT_PAGE = 50
SEVERITIES = ("", "info", "low", "medium", "high", "critical")
CHANGES = ("approve", "disable", "enable", "revoke")
HOUR_MS = 3_600_000


async def _vault(ctx: Ctx, vault_id: str) -> Any:
    for vault in await ctx.call(ctx.svc.vaults.list_vaults, ctx.principal):
        if vault.id == vault_id:
            return vault
    raise NotFound(f"vault {vault_id} not found")


# -- machines ---------------------------------------------------------------------------------
def _state(m: Any) -> str:
    if m.revoked_ms is not None:
        return "revoked"
    if not m.approved:
        return "pending"
    return "enabled" if m.enabled else "disabled"


async def machines(ctx: Ctx) -> Response:
    vault_id = ctx.param("vault")
    found = await ctx.call(ctx.svc.machines.list_machines, ctx.principal, vault_id)
    projects = await ctx.call(ctx.svc.vaults.list_projects, ctx.principal, vault_id)
    return ctx.render(
        "machines.html",
        vault=await _vault(ctx, vault_id),
        machines=[(m, _state(m), member) for m, member in found],
        projects=projects,
    )


async def change_machine(ctx: Ctx) -> Response:
    """POST /ui/machines/{machine}/{change}: approve | disable | enable | revoke."""
    change = ctx.param("change")
    if change not in CHANGES:
        raise NotFound("no such route")
    machine = await ctx.call(
        ctx.svc.machines.change_state, ctx.principal, ctx.actor, ctx.param("machine"), change
    )
    return redirect(f"/ui/vaults/{machine.vault_id}/machines")


async def grants(ctx: Ctx) -> Response:
    """GET /ui/projects/{project}/grants: machines x (a page of) the project's secrets."""
    project_id = ctx.param("project")
    proj = await ctx.call(ctx.svc.vaults.get_project, ctx.principal, project_id, perm.GRANT_MANAGE)
    search, after = ctx.query("q"), ctx.query("after", values.NAME_MAX) or None
    found = await ctx.call(ctx.svc.secrets.page, ctx.principal, project_id, search, after, PAGE_SIZE + 1)
    page = found[:PAGE_SIZE]
    rows = []
    for machine, member in await ctx.call(ctx.svc.machines.list_machines, ctx.principal, proj.vault_id):
        if machine.revoked_ms is not None:
            continue
        granted = set(await ctx.call(ctx.svc.machines.grants_of_machine, ctx.principal, machine.id))
        rows.append((machine, _state(machine), project_id in member, granted))
    return ctx.render(
        "grants.html",
        project=proj,
        secrets=page,
        rows=rows,
        search=search,
        after=after or "",
        next_after=page[-1].name if len(found) > PAGE_SIZE else None,
    )


async def save_grants(ctx: Ctx) -> Response:
    """POST /ui/projects/{project}/grants: the whole matrix of one page in one form. The
    secrets and machines shown are sent back (``secret``, ``machine``); checked cells are
    ``g`` = ``machine:secret``; a machine given any grant is added to the project first."""
    project_id = ctx.param("project")
    shown_secrets = set(ctx.form.all("secret"))
    shown_machines = ctx.form.all("machine")
    checked = set(ctx.form.all("g"))
    svc, who, me = ctx.svc.machines, ctx.actor, ctx.principal
    for machine_id in shown_machines:
        current = set(await ctx.call(svc.grants_of_machine, me, machine_id)) & shown_secrets
        wanted = {s for s in shown_secrets if f"{machine_id}:{s}" in checked}
        if wanted - current:
            await ctx.call(svc.set_membership, me, who, machine_id, project_id, True)
            await ctx.call(svc.set_grants, me, who, machine_id, sorted(wanted - current), True)
        if current - wanted:
            await ctx.call(svc.set_grants, me, who, machine_id, sorted(current - wanted), False)
    back = ctx.form.get("back", max_len=600)
    return redirect(
        back if back.startswith(f"/ui/projects/{project_id}/grants") else f"/ui/projects/{project_id}/grants"
    )


# -- enrollment tokens ------------------------------------------------------------------------
async def enrollment(ctx: Ctx, created: tuple[Any, str] | None = None) -> Response:
    vault_id = ctx.param("vault")
    tokens = await ctx.call(ctx.svc.machines.list_enrollments, ctx.principal, vault_id)
    projects = await ctx.call(ctx.svc.vaults.list_projects, ctx.principal, vault_id)
    return ctx.render(
        "enrollment.html",
        vault=await _vault(ctx, vault_id),
        tokens=tokens,
        projects=projects,
        created=created,
        now=ctx.svc.deps.clock(),
        status=201 if created else 200,
    )


async def enrollment_page(ctx: Ctx) -> Response:
    return await enrollment(ctx)


async def create_enrollment(ctx: Ctx) -> Response:
    """POST /ui/vaults/{vault}/enrollment-tokens: the token is shown once, on this answer only."""
    f = ctx.form
    approval = f.get("approval", "manual", 8)
    token, plaintext = await ctx.call(
        lambda: ctx.svc.machines.create_enrollment(
            ctx.principal,
            ctx.actor,
            ctx.param("vault"),
            name=f.get("name") or "console",
            project_ids=[p for p in f.all("project") if p][:100],
            secret_ids=[],
            max_uses=f.int("maxUses", 1, 10_000),
            token_ttl_s=f.int("ttlHours", 1, 366 * 24) * 3600,
            machine_ttl_s=None,
            approval=approval,
            hostname_pattern=None,
            name_pattern=None,
            source_cidr=f.get("sourceCidr", max_len=64) or None,
        )
    )
    return await enrollment(ctx, (token, plaintext))


async def revoke_enrollment(ctx: Ctx) -> Response:
    await ctx.call(ctx.svc.machines.revoke_enrollment, ctx.principal, ctx.actor, ctx.param("token"))
    return redirect(f"/ui/vaults/{ctx.form.get('vault', max_len=40)}/enrollment-tokens")


# -- audit ------------------------------------------------------------------------------------
def _ms(ctx: Ctx, name: str) -> int | None:
    """A time filter: ``YYYY-MM-DDTHH:MM`` (a datetime-local field, UTC) or epoch ms."""
    raw = ctx.query(name, 32)
    if not raw:
        return None
    if raw.isascii() and raw.isdigit() and len(raw) <= 15:
        return int(raw)
    from datetime import UTC, datetime

    try:
        return int(datetime.fromisoformat(raw).replace(tzinfo=UTC).timestamp() * 1000)
    except ValueError as e:
        raise InvalidInput(f"{name} must be a date and time (YYYY-MM-DDTHH:MM, UTC)") from e


async def audit(ctx: Ctx) -> Response:
    """GET /ui/vaults/{vault}/audit?action=&actor=&since=&until=&severity=&before=&verify=1."""
    vault_id = ctx.param("vault")
    severity = ctx.query("severity", 16)
    if severity not in SEVERITIES:
        raise InvalidInput("unknown severity")
    filters = Filters(
        actor=ctx.query("actor") or None,
        action=ctx.query("action") or None,
        secret=ctx.query("secret", 40) or None,
        severity=severity or None,
        since_ms=_ms(ctx, "since"),
        until_ms=_ms(ctx, "until"),
    )
    before_raw = ctx.query("before", 15)
    before = int(before_raw) if before_raw.isascii() and before_raw.isdigit() else None
    found = await ctx.call(ctx.svc.audit.query, ctx.principal, vault_id, filters, before, AUDIT_PAGE)
    more = len(found) == AUDIT_PAGE and found[-1].entry.seq > 1
    verdict = await ctx.call(_verify, ctx, vault_id) if ctx.query("verify", 1) == "1" else None
    keep = {k: ctx.query(k, 32) for k in ("action", "actor", "secret", "severity", "since", "until")}
    return ctx.render(
        "audit.html",
        vault=await _vault(ctx, vault_id),
        records=[s.entry for s in found],
        next_before=found[-1].entry.seq if found and more else None,
        filters=keep,
        severities=SEVERITIES,
        verdict=verdict,
    )


def _verify(ctx: Ctx, chain: str) -> dict[str, Any]:
    """The chain and every checkpoint checked like ``sikker audit verify`` does (the pure
    verifier over the export), with the server's audit key pinned; plus the latest checkpoint."""
    key_id, public = ctx.svc.audit.public_key()
    lines = (orjson.loads(orjson.dumps(line)) for line in ctx.svc.audit.export(ctx.principal, chain))
    report = audit_verify.verify(lines, public, from_start=True)
    checkpoints = ctx.svc.audit.checkpoints(ctx.principal, chain)
    latest = checkpoints[-1] if checkpoints else None
    return {
        "report": report,
        "fingerprint": audit_verify.fingerprint(public),
        "key_id": key_id,
        "latest": latest,
    }


# -- canaries ---------------------------------------------------------------------------------
async def canaries(ctx: Ctx) -> Response:
    vault_id = ctx.param("vault")
    found = await ctx.call(ctx.svc.canaries.list_canaries, ctx.principal, vault_id)
    trips = []
    for canary, _name, _project in found:
        _, _, history = await ctx.call(ctx.svc.canaries.show, ctx.principal, canary.secret_id)
        trips.extend(history)
    projects = await ctx.call(ctx.svc.vaults.list_projects, ctx.principal, vault_id)
    return ctx.render(
        "canaries.html",
        vault=await _vault(ctx, vault_id),
        canaries=found,
        trips=sorted(trips, key=lambda t: -t.time_ms)[:200],
        frozen=[p for p in projects if p.frozen_ms is not None],
        can_unfreeze={p.id: can(ctx.principal, perm.PROJECT_UNFREEZE, vault_id, p.id) for p in projects},
    )


async def unfreeze(ctx: Ctx) -> Response:
    project_id = ctx.param("project")
    proj = await ctx.call(ctx.svc.vaults.get_project, ctx.principal, project_id)
    reason = ctx.form.get("reason", max_len=300)
    await ctx.call(ctx.svc.canaries.unfreeze, ctx.principal, ctx.actor, project_id, reason)
    return redirect(f"/ui/vaults/{proj.vault_id}/canaries")


# -- members ----------------------------------------------------------------------------------
async def members(ctx: Ctx) -> Response:
    vault_id = ctx.param("vault")
    bindings = await ctx.call(ctx.svc.people.list_bindings, ctx.principal, vault_id)
    users = (
        {u.id: u.name for u in await ctx.call(ctx.svc.people.list_users, ctx.principal)}
        if can(ctx.principal, perm.USER_MANAGE, None)
        else {}
    )
    return ctx.render(
        "members.html",
        vault=await _vault(ctx, vault_id),
        bindings=bindings,
        users=users,
        roles=perm.ROLES,
        projects=await ctx.call(ctx.svc.vaults.list_projects, ctx.principal, vault_id),
    )


async def bind(ctx: Ctx) -> Response:
    vault_id = ctx.param("vault")
    f = ctx.form
    project_id = f.get("project", max_len=40) or None
    user, group = f.get("user") or None, f.get("group") or None
    await ctx.call(
        lambda: ctx.svc.people.bind(
            ctx.principal,
            ctx.actor,
            f.get("role", max_len=16),
            vault_id=None if project_id else vault_id,
            project_id=project_id,
            user=user,
            group=group,
        )
    )
    return redirect(f"/ui/vaults/{vault_id}/members")


async def unbind(ctx: Ctx) -> Response:
    await ctx.call(ctx.svc.people.unbind, ctx.principal, ctx.actor, ctx.param("binding"))
    return redirect(f"/ui/vaults/{ctx.form.get('vault', max_len=40)}/members")


# -- dashboard --------------------------------------------------------------------------------
READS = ("machine:secret:read", "admin:secret:read")


def chart(counts: list[int], width: int = 480, height: int = 120) -> dict[str, Any]:
    """Bars for an inline SVG (drawn by the template, no script): one per hour."""
    top = max(counts) if counts and max(counts) > 0 else 1
    step = width / max(len(counts), 1)
    bars = []
    for i, n in enumerate(counts):
        h = round((height - 14) * n / top, 1)
        bars.append(
            {"x": round(i * step + 1, 1), "y": round(height - h, 1), "w": round(step - 2, 1), "h": h, "n": n}
        )
    return {"width": width, "height": height, "bars": bars, "top": top}


async def dashboard(ctx: Ctx) -> Response:
    """GET /ui/vaults/{vault}/dashboard: secret reads per hour (last 24 h) and recent alerts,
    from the audit log (``audit:read``)."""
    vault_id = ctx.param("vault")
    now = ctx.svc.deps.clock()
    start = now - 24 * HOUR_MS
    counts = [0] * 24
    for action in READS:
        found = await ctx.call(
            ctx.svc.audit.query, ctx.principal, vault_id, Filters(action=action, since_ms=start), None, 1000
        )
        for stored in found:
            counts[min(23, (stored.entry.time_ms - start) // HOUR_MS)] += 1
    alerts: list[Any] = []
    for severity in ("critical", "high"):
        found = await ctx.call(
            ctx.svc.audit.query, ctx.principal, vault_id, Filters(severity=severity), None, 10
        )
        alerts.extend(s.entry for s in found)
    return ctx.render(
        "dashboard.html",
        vault=await _vault(ctx, vault_id),
        chart=chart(counts),
        total=sum(counts),
        alerts=sorted(alerts, key=lambda e: -e.time_ms)[:10],
    )

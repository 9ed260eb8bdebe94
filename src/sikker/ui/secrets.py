"""Console pages: vaults, projects, secrets (list, create, detail, update, reveal, roll back,
trash, restore).

Every handler calls the same service method as the admin API route of the same action, with
the signed-in person's Principal, so ``permissions.decide`` answers every request."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from sikker.core import permissions as perm
from sikker.core import values
from sikker.core.model import Principal
from sikker.errors import InvalidInput, NotFound
from sikker.ui.web import (
    Ctx,
    redirect,
    secure,
    wants_json,
)

PAGE_SIZE = 50


# -- vaults and projects ----------------------------------------------------------------------
def can(principal: Principal, action: str, vault_id: str | None, project_id: str | None = None) -> bool:
    """What a page shows is a hint only; the service decides again on every request."""
    return perm.allowed(principal, action, vault_id, project_id)


async def vaults(ctx: Ctx) -> Response:
    found = await ctx.call(ctx.svc.vaults.list_vaults, ctx.principal)
    return ctx.render("vaults.html", vaults=found)


async def _vault(ctx: Ctx, vault_id: str) -> Any:
    for vault in await ctx.call(ctx.svc.vaults.list_vaults, ctx.principal):
        if vault.id == vault_id:
            return vault
    raise NotFound(f"vault {vault_id} not found")


async def vault(ctx: Ctx) -> Response:
    vault_id = ctx.param("vault")
    projects = await ctx.call(ctx.svc.vaults.list_projects, ctx.principal, vault_id)
    return ctx.render(
        "vault.html",
        vault=await _vault(ctx, vault_id),
        projects=projects,
        can_create=can(ctx.principal, perm.PROJECT_WRITE, vault_id),
        can_machines=can(ctx.principal, perm.MACHINE_MANAGE, vault_id),
        can_audit=can(ctx.principal, perm.AUDIT_READ, vault_id),
        can_members=can(ctx.principal, perm.MEMBER_MANAGE, vault_id),
        can_canaries=can(ctx.principal, perm.CANARY_MANAGE, vault_id),
    )


async def create_project(ctx: Ctx) -> Response:
    vault_id = ctx.param("vault")
    project = await ctx.call(
        ctx.svc.vaults.create_project, ctx.principal, ctx.actor, vault_id, ctx.form.get("name")
    )
    return redirect(f"/ui/projects/{project.id}")


# -- secrets ----------------------------------------------------------------------------------
async def project(ctx: Ctx) -> Response:
    """GET /ui/projects/{project}?q=&after=: one page of secrets, searched and paged in the store."""
    project_id = ctx.param("project")
    proj = await ctx.call(ctx.svc.vaults.get_project, ctx.principal, project_id)
    search, after = ctx.query("q"), ctx.query("after", values.NAME_MAX) or None
    found = await ctx.call(ctx.svc.secrets.page, ctx.principal, project_id, search, after, PAGE_SIZE + 1)
    more = len(found) > PAGE_SIZE
    return ctx.render(
        "project.html",
        project=proj,
        secrets=found[:PAGE_SIZE],
        search=search,
        after=after,
        next_after=found[PAGE_SIZE - 1].name if more else None,
        can_write=can(ctx.principal, perm.SECRET_WRITE, proj.vault_id, proj.id),
        can_grant=can(ctx.principal, perm.GRANT_MANAGE, proj.vault_id, proj.id),
    )


def _value(ctx: Ctx, kind: str) -> values.SecretValue:
    """A standard value (``value``) or structured fields (``fieldName``/``fieldValue`` pairs)."""
    max_bytes = ctx.svc.deps.settings.max_value_bytes
    if kind == "structured":
        names, given = ctx.form.all("fieldName"), ctx.form.all("fieldValue")
        if len(names) != len(given):
            raise InvalidInput("every field needs a name and a value")
        fields = {n.strip(): v for n, v in zip(names, given, strict=True) if n.strip()}
        if not fields:
            raise InvalidInput("a structured secret needs at least one field")
        if len(fields) > values.MAX_FIELDS:
            raise InvalidInput(f"at most {values.MAX_FIELDS} fields")
        return values.structured(fields, max_bytes)
    if kind != "standard":
        raise InvalidInput("type must be standard or structured")
    return values.standard(ctx.form.get("value", max_len=max_bytes), max_bytes)


async def create_secret(ctx: Ctx) -> Response:
    project_id = ctx.param("project")
    value = _value(ctx, ctx.form.get("type", "standard", 16))
    secret = await ctx.call(
        ctx.svc.secrets.create, ctx.principal, ctx.actor, project_id, ctx.form.get("name"), value
    )
    return redirect(f"/ui/secrets/{secret.id}")


def field_changes(versions: list[Any]) -> dict[int, tuple[list[str], list[str]]]:
    """Per version: the field names added and removed since the version before (structured
    secrets; metadata only, never values)."""
    changes: dict[int, tuple[list[str], list[str]]] = {}
    before: set[str] | None = None
    for v in sorted(versions, key=lambda v: v.version):
        names = set(orjson.loads(v.field_names)) if v.field_names else set()
        if before is not None:
            changes[v.version] = (sorted(names - before), sorted(before - names))
        before = names
    return changes


async def secret(ctx: Ctx) -> Response:
    """GET /ui/secrets/{secret}: metadata, versions, rotation; never the value. A dynamic
    secret is shown at /ui/dynamic/{secret}."""
    secret_id = ctx.param("secret")
    meta = await ctx.call(ctx.svc.secrets.get_meta, ctx.principal, secret_id)
    if meta.kind == "dynamic":  # no stored value, no versions: its definition and leases instead
        return redirect(f"/ui/dynamic/{secret_id}")
    versions = await ctx.call(ctx.svc.secrets.versions, ctx.principal, secret_id)
    policy, managed, rotations = await ctx.call(ctx.svc.rotation.get_policy, ctx.principal, secret_id)
    proj = await ctx.call(ctx.svc.vaults.get_project, ctx.principal, meta.project_id)
    return ctx.render(
        "secret.html",
        secret=meta,
        project=proj,
        versions=sorted(versions, key=lambda v: -v.version),
        changes=field_changes(versions) if meta.kind == "structured" else {},
        policy=policy,
        managed=managed,
        rotations=rotations,
        can_read=can(ctx.principal, perm.SECRET_READ, meta.vault_id, meta.project_id),
        can_write=can(ctx.principal, perm.SECRET_WRITE, meta.vault_id, meta.project_id),
    )


async def deleted_secret(ctx: Ctx) -> Response:
    """GET /ui/projects/{project}/trash: the trash, with restore buttons."""
    project_id = ctx.param("project")
    proj = await ctx.call(ctx.svc.vaults.get_project, ctx.principal, project_id)
    trashed = await ctx.call(ctx.svc.secrets.list_secrets, ctx.principal, project_id, True)
    return ctx.render(
        "trash.html",
        project=proj,
        secrets=trashed[:500],
        can_write=can(ctx.principal, perm.SECRET_WRITE, proj.vault_id, proj.id),
    )


async def update_secret(ctx: Ctx) -> Response:
    secret_id = ctx.param("secret")
    meta = await ctx.call(ctx.svc.secrets.get_meta, ctx.principal, secret_id)
    value = _value(ctx, meta.kind)
    await ctx.call(ctx.svc.secrets.update, ctx.principal, ctx.actor, secret_id, value)
    return redirect(f"/ui/secrets/{secret_id}")


async def reveal(ctx: Ctx) -> Response:
    """POST /ui/secrets/{secret}/reveal: the admin API's value read (``SecretService.reveal``:
    the same decision and the same audit record), answered as JSON for the page's script, or
    as a page without script. Never cached."""
    secret_id = ctx.param("secret")
    version = ctx.form.int("version", 1) if ctx.form.get("version", max_len=12) else None
    revealed = await ctx.call(ctx.svc.secrets.reveal, ctx.principal, ctx.actor, secret_id, version)
    plaintext = revealed.value.plaintext.decode()
    fields = orjson.loads(plaintext) if revealed.value.kind == "structured" else None
    if wants_json(ctx.request):
        body = {"version": revealed.version} | ({"fields": fields} if fields else {"value": plaintext})
        return secure(Response(orjson.dumps(body), media_type="application/json"))
    return ctx.render(
        "revealed.html", secret=revealed.secret, version=revealed.version, value=plaintext, fields=fields
    )


async def rollback(ctx: Ctx) -> Response:
    secret_id = ctx.param("secret")
    version = ctx.form.int("version", 1)
    await ctx.call(ctx.svc.secrets.rollback, ctx.principal, ctx.actor, secret_id, version)
    return redirect(f"/ui/secrets/{secret_id}")


async def delete(ctx: Ctx) -> Response:
    secret_id = ctx.param("secret")
    meta = await ctx.call(ctx.svc.secrets.get_meta, ctx.principal, secret_id)
    await ctx.call(ctx.svc.secrets.delete, ctx.principal, ctx.actor, secret_id)
    return redirect(f"/ui/projects/{meta.project_id}/trash")


async def restore(ctx: Ctx) -> Response:
    secret_id = ctx.param("secret")
    await ctx.call(ctx.svc.secrets.restore, ctx.principal, ctx.actor, secret_id)
    return redirect(f"/ui/secrets/{secret_id}")

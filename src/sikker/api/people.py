"""People on the admin plane: sign-in and sessions, user accounts, TOTP, role bindings."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sikker.api import schema
from sikker.api.context import actor, authed, authed_json, call, ok, services
from sikker.core import values
from sikker.core.audit import Actor
from sikker.core.model import BoundRole, Principal, User
from sikker.errors import NotFound
from sikker.service.people import SignedIn

NAME = schema.Field(str, required=True, max_len=values.NAME_MAX)
PASSWORD = schema.Field(str, max_len=1024, opaque=True)
LOGIN_FIELDS = {
    "user": NAME,
    "password": schema.Field(str, required=True, max_len=1024, opaque=True),
    "totp": schema.Field(str, max_len=64),
}
USER_FIELDS = {"name": NAME, "email": schema.Field(str, required=True, max_len=320), "password": PASSWORD}
BINDING_FIELDS = {
    "role": schema.Field(str, required=True, max_len=16),
    "vaultId": schema.Field(str, max_len=40),
    "projectId": schema.Field(str, max_len=40),
    "user": schema.Field(str, max_len=values.NAME_MAX),
    "group": schema.Field(str, max_len=values.NAME_MAX),
}
CODE_FIELDS = {"code": schema.Field(str, required=True, max_len=64)}
TOKEN_FIELDS = {
    "name": NAME,
    "ttlSeconds": schema.Field(int, required=True, min_value=60),
    "role": schema.Field(str, max_len=16),
    "vaultId": schema.Field(str, max_len=40),
    "projectId": schema.Field(str, max_len=40),
}


def _user(u: User) -> dict[str, Any]:
    return {
        "id": u.id,
        "name": u.name,
        "email": u.email,
        "disabled": u.disabled_ms is not None,
        "mfa": u.totp_confirmed,
        "sso": u.oidc_issuer is not None,
        "groups": list(u.groups),
        "createdAt": u.created_ms,
    }


def _binding(b: BoundRole) -> dict[str, Any]:
    return {
        "id": b.id,
        "role": b.binding.role,
        "vaultId": b.binding.vault_id,
        "projectId": b.binding.project_id,
        "userId": b.user_id,
        "group": b.group_name,
        "createdAt": b.created_ms,
    }


def _signed_in(s: SignedIn) -> dict[str, Any]:
    return {
        "token": s.token,
        "id": s.session.id,
        "expiresAt": s.session.expires_ms,
        "user": {"id": s.user.id, "name": s.user.name},
    }


def _whoami(p: Principal) -> dict[str, Any]:
    return {
        "kind": p.kind,
        "id": p.user_id or p.token_id,
        "name": p.name,
        "vaultId": p.vault_id,
        "bindings": [{"role": b.role, "vaultId": b.vault_id, "projectId": b.project_id} for b in p.bindings],
    }


async def login(request: Request) -> Response:
    """POST /api/auth/login {user, password, totp?} -> a session token (shown once)."""
    body = schema.parse(await request.body(), LOGIN_FIELDS)
    signed = await call(
        services(request).people.login, body["user"], body["password"], body.get("totp"), actor(request)
    )
    return ok(_signed_in(signed), 201)


DEVICE_POLL_FIELDS = {"handle": schema.Field(str, required=True, max_len=4096)}
MFA_FIELDS = {"required": schema.Field(bool, required=True)}
SSO_START_FIELDS = {"redirectUri": schema.Field(str, max_len=512)}
SSO_FINISH_FIELDS = {
    "handle": schema.Field(str, required=True, max_len=4096),
    "query": schema.Field(dict, required=True),
}


async def sso_providers(request: Request) -> Response:
    """GET /api/auth/oidc -> the configured single sign-on providers' names."""
    return ok({"providers": services(request).people.providers()})


async def sso_start(request: Request) -> Response:
    """POST /api/auth/oidc/{provider}/start {redirectUri?} -> {url, handle}."""
    body = schema.parse(await request.body(), SSO_START_FIELDS)
    people = services(request).people
    provider = request.path_params["provider"]
    url, handle = await call(people.sso_start, provider, body.get("redirectUri"), actor(request))
    return ok({"url": url, "handle": handle})


async def sso_finish(request: Request) -> Response:
    """POST /api/auth/oidc/{provider}/finish {handle, query: the callback's parameters}."""
    body = schema.parse(await request.body(), SSO_FINISH_FIELDS)
    query = {str(k): str(v) for k, v in body["query"].items() if isinstance(v, str)}
    people = services(request).people
    signed = await call(
        people.sso_finish, request.path_params["provider"], body["handle"], query, actor(request)
    )
    return ok(_signed_in(signed), 201)


async def sso_device_start(request: Request) -> Response:
    """POST /api/auth/oidc/{provider}/device -> what to show the person, and a handle to poll."""
    people = services(request).people
    device, handle = await call(people.sso_device_start, request.path_params["provider"], actor(request))
    return ok(
        {
            "userCode": device.user_code,
            "verificationUri": device.verification_uri,
            "verificationUriComplete": device.verification_uri_complete,
            "interval": device.interval,
            "handle": handle,
        },
        201,
    )


async def sso_device_poll(request: Request) -> Response:
    """POST /api/auth/oidc/{provider}/device/poll {handle} -> 201 a session, or 202 pending."""
    body = schema.parse(await request.body(), DEVICE_POLL_FIELDS)
    people = services(request).people
    provider = request.path_params["provider"]
    signed = await call(people.sso_device_poll, provider, body["handle"], actor(request))
    return ok({"pending": True}, 202) if signed is None else ok(_signed_in(signed), 201)


async def logout(request: Request) -> Response:
    svc = services(request)
    await authed(request, svc.people.logout)
    return ok({"loggedOut": True})


async def whoami(request: Request) -> Response:
    principal = await authed(request, lambda p, _: p)
    return ok(_whoami(principal))


async def create_user(request: Request) -> Response:
    """POST /api/users {name, email, password?} (root). No password: single sign-on only."""
    svc = services(request)

    def create(principal: Principal, who: Actor, body: dict[str, Any]) -> User:
        return svc.people.create_user(principal, who, body["name"], body["email"], body.get("password"))

    user = await authed_json(request, USER_FIELDS, create)
    return ok(_user(user), 201)


async def list_users(request: Request) -> Response:
    svc = services(request)
    return ok({"users": [_user(u) for u in await authed(request, lambda p, _: svc.people.list_users(p))]})


async def show_user(request: Request) -> Response:
    svc, name = services(request), request.path_params["user"]
    user = await authed(request, lambda p, _: svc.people.find(p, name))
    return ok(_user(user))


async def change_user(request: Request) -> Response:
    """POST /api/users/{user}/disable | enable (root). Disabling ends every session at once."""
    svc, change = services(request), request.path_params["change"]

    def set_disabled(principal: Principal, who: Actor) -> User:
        if change not in ("disable", "enable"):
            raise NotFound("no such route")
        return svc.people.set_disabled(principal, who, request.path_params["user"], change == "disable")

    user = await authed(request, set_disabled)
    return ok(_user(user))


async def delete_user(request: Request) -> Response:
    svc, name = services(request), request.path_params["user"]
    await authed(request, lambda p, w: svc.people.delete_user(p, w, name))
    return ok({"deleted": request.path_params["user"]})


async def enrol_totp(request: Request) -> Response:
    """POST /api/users/me/totp -> {secret, uri}: scan the URI, then confirm with a code."""
    svc = services(request)
    secret, uri = await authed(request, svc.people.enrol_totp)
    return ok({"secret": secret, "uri": uri}, 201)


async def confirm_totp(request: Request) -> Response:
    svc, raw = services(request), await request.body()
    codes = await authed(
        request, lambda p, w: svc.people.confirm_totp(p, w, schema.parse(raw, CODE_FIELDS)["code"])
    )
    return ok({"recoveryCodes": codes})


async def create_personal_token(request: Request) -> Response:
    svc = services(request)

    def create(principal: Principal, who: Actor, body: dict[str, Any]) -> SignedIn:
        return svc.people.create_token(
            principal,
            who,
            body["name"],
            body["ttlSeconds"],
            body.get("role"),
            body.get("vaultId"),
            body.get("projectId"),
        )

    signed = await authed_json(request, TOKEN_FIELDS, create)
    return ok(_signed_in(signed), 201)


async def require_mfa(request: Request) -> Response:
    """PUT /api/vaults/{vault}/mfa {required: bool} (root)."""
    svc, raw, vault = services(request), await request.body(), request.path_params["vault"]

    def require(principal: Principal, who: Actor) -> bool:
        required: bool = schema.parse(raw, MFA_FIELDS)["required"]
        svc.people.require_mfa(principal, who, vault, required)
        return required

    required = await authed(request, require)
    return ok({"vaultId": vault, "mfaRequired": required})


async def bind(request: Request) -> Response:
    """POST /api/role-bindings {role, vaultId | projectId, user | group} (root)."""
    svc = services(request)

    def bind_role(principal: Principal, who: Actor, body: dict[str, Any]) -> BoundRole:
        return svc.people.bind(
            principal,
            who,
            body["role"],
            vault_id=body.get("vaultId"),
            project_id=body.get("projectId"),
            user=body.get("user"),
            group=body.get("group"),
        )

    row = await authed_json(request, BINDING_FIELDS, bind_role)
    return ok(_binding(row), 201)


async def list_bindings(request: Request) -> Response:
    svc, vault = services(request), request.query_params.get("vault") or None
    rows = await authed(request, lambda p, _: svc.people.list_bindings(p, vault))
    return ok({"bindings": [_binding(b) for b in rows]})


async def unbind(request: Request) -> Response:
    svc, binding = services(request), request.path_params["binding"]
    await authed(request, lambda p, w: svc.people.unbind(p, w, binding))
    return ok({"deleted": request.path_params["binding"]})


ROUTES = [
    Route("/api/auth/login", login, methods=["POST"]),
    Route("/api/auth/logout", logout, methods=["POST"]),
    Route("/api/auth/oidc", sso_providers, methods=["GET"]),
    Route("/api/auth/oidc/{provider}/start", sso_start, methods=["POST"]),
    Route("/api/auth/oidc/{provider}/finish", sso_finish, methods=["POST"]),
    Route("/api/auth/oidc/{provider}/device", sso_device_start, methods=["POST"]),
    Route("/api/auth/oidc/{provider}/device/poll", sso_device_poll, methods=["POST"]),
    Route("/api/auth/whoami", whoami, methods=["GET"]),
    Route("/api/users", create_user, methods=["POST"]),
    Route("/api/users", list_users, methods=["GET"]),
    Route("/api/users/me/totp", enrol_totp, methods=["POST"]),
    Route("/api/users/me/totp/confirm", confirm_totp, methods=["POST"]),
    Route("/api/users/me/tokens", create_personal_token, methods=["POST"]),
    Route("/api/users/{user}", show_user, methods=["GET"]),
    Route("/api/users/{user}", delete_user, methods=["DELETE"]),
    Route("/api/users/{user}/{change}", change_user, methods=["POST"]),
    Route("/api/vaults/{vault}/mfa", require_mfa, methods=["PUT"]),
    Route("/api/role-bindings", bind, methods=["POST"]),
    Route("/api/role-bindings", list_bindings, methods=["GET"]),
    Route("/api/role-bindings/{binding}", unbind, methods=["DELETE"]),
]

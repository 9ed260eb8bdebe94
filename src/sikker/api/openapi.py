"""``GET /api/openapi.json``: one OpenAPI 3.1 document for the admin API (/api) and the
machine API (/v1), generated from the routes the app serves and the request schemas the
handlers validate with (the ``schema.Field`` tables below are the handlers' own objects).

Every route of the router is described (paths walked from ``app.routes``, so a new route
appears by itself); a body-carrying route must be named in ``BODIES`` or ``NO_BODY``
(``tests/integration/test_openapi.py`` fails otherwise).
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from sikker.api import (
    admin,
    audit,
    canaries,
    dynamic,
    jwt_roles,
    machine,
    machines_admin,
    people,
    rotation,
    sys,
)
from sikker.api.context import ok
from sikker.api.schema import INT_MAX, QUERY_INT_MAX, Field

PATH = "/api/openapi.json"

BODIES: dict[tuple[str, str], dict[str, Field]] = {
    ("POST", "/api/sys/init"): sys.INIT_FIELDS,
    ("POST", "/api/sys/unseal"): sys.UNSEAL_FIELDS,
    ("POST", "/api/sys/rotate-keys"): sys.ROTATE_FIELDS,
    ("POST", "/api/vaults"): admin.NAME_FIELDS,
    ("POST", "/api/vaults/{vault}/projects"): admin.NAME_FIELDS,
    ("POST", "/api/projects/{project}/secrets"): admin.CREATE_SECRET_FIELDS,
    ("PUT", "/api/secrets/{secret}"): admin.VALUE_FIELDS,
    ("POST", "/api/secrets/{secret}/rollback"): admin.ROLLBACK_FIELDS,
    ("POST", "/api/tokens"): admin.TOKEN_FIELDS,
    ("POST", "/api/machines/{machine}/rename"): machines_admin.RENAME_FIELDS,
    ("POST", "/api/machines/{machine}/projects"): machines_admin.MEMBERSHIP_FIELDS,
    ("POST", "/api/machines/{machine}/grants"): machines_admin.GRANT_BODY,
    ("POST", "/api/machines/{machine}/grants/remove"): machines_admin.GRANT_BODY,
    ("POST", "/api/vaults/{vault}/enrollment-tokens"): machines_admin.ENROLL_FIELDS,
    ("POST", "/api/audit-streams"): audit.STREAM_FIELDS,
    ("PUT", "/api/secrets/{secret}/rotation"): rotation.POLICY_FIELDS,
    ("PUT", "/api/secrets/{secret}/managed"): rotation.MANAGED_FIELDS,
    ("POST", "/v1/secret/{secret}/agent/heartbeat"): rotation.HEARTBEAT,
    ("POST", "/v1/secret/{secret}/agent/confirm-rotation"): rotation.FINISH,
    ("POST", "/v1/secret/{secret}/agent/reject-rotation"): rotation.FINISH,
    ("POST", "/api/projects/{project}/canaries"): canaries.CREATE_FIELDS,
    ("POST", "/api/projects/{project}/unfreeze"): canaries.UNFREEZE_FIELDS,
    ("POST", "/api/auth/login"): people.LOGIN_FIELDS,
    ("POST", "/api/auth/oidc/{provider}/start"): people.SSO_START_FIELDS,
    ("POST", "/api/auth/oidc/{provider}/finish"): people.SSO_FINISH_FIELDS,
    ("POST", "/api/auth/oidc/{provider}/device/poll"): people.DEVICE_POLL_FIELDS,
    ("POST", "/api/users"): people.USER_FIELDS,
    ("POST", "/api/users/me/totp/confirm"): people.CODE_FIELDS,
    ("POST", "/api/users/me/tokens"): people.TOKEN_FIELDS,
    ("PUT", "/api/vaults/{vault}/mfa"): people.MFA_FIELDS,
    ("POST", "/api/role-bindings"): people.BINDING_FIELDS,
    ("POST", "/v1/secrets/list"): machine.PROJECT_BODY,
    ("POST", "/v1/secrets/export"): machine.PROJECT_BODY,
    ("POST", "/v1/secrets/poll"): machine.POLL_BODY,
    ("POST", "/v1/{vault}/enroll/register"): machine.ENROLL_BODY,
    ("POST", "/v1/bootstrap/{token}"): machine.BOOTSTRAP_BODY,
    ("POST", "/api/vaults/{vault}/jwt-roles"): jwt_roles.ROLE_BODY,
    ("PUT", "/api/jwt-roles/{role}"): jwt_roles.ROLE_BODY,
    ("POST", "/api/jwt-roles/{role}/test"): jwt_roles.TEST_BODY,
    ("POST", "/v1/{vault}/auth/jwt/login"): jwt_roles.LOGIN_BODY,
    ("POST", "/api/projects/{project}/dynamic-secrets"): dynamic.CREATE,
    ("PUT", "/api/dynamic-secrets/{id}"): dynamic.COMMON,
    ("POST", "/api/dynamic-secrets/{id}/orphans"): dynamic.ORPHANS,
    ("POST", "/api/vaults/{vault}/leases/revoke"): dynamic.REVOKE_MANY,
    ("POST", "/api/leases/{id}/renew"): dynamic.TTL_BODY,
    ("POST", "/api/leases/{id}/revoke"): dynamic.REVOKE,
    ("POST", "/api/leases/{id}/forget"): dynamic.FORGET,
    ("POST", "/v1/dynamic/{id}/leases"): dynamic.TTL_BODY,
    ("POST", "/v1/leases/{id}/renew"): dynamic.TTL_BODY,
}
# POST routes that take no body (an action on the object the path names).
NO_BODY = frozenset(
    {
        ("POST", "/api/sys/seal"),
        ("POST", "/api/secrets/{secret}/restore"),
        ("POST", "/api/machines/{machine}/{change}"),
        ("POST", "/api/secrets/{secret}/rotate"),
        ("POST", "/api/canaries/{secret}/enable"),
        ("POST", "/api/canaries/{secret}/disable"),
        ("POST", "/api/auth/logout"),
        ("POST", "/api/auth/oidc/{provider}/device"),
        ("POST", "/api/users/me/totp"),
        ("POST", "/api/users/{user}/{change}"),
        ("POST", "/api/jwt-roles/{role}/disable"),
        ("POST", "/api/jwt-roles/{role}/enable"),
        ("POST", "/api/sys/backup"),
    }
)
_INT: dict[str, Any] = {"type": "integer", "minimum": 0, "maximum": QUERY_INT_MAX}
_AUDIT_FILTERS: dict[str, dict[str, Any]] = {
    "actor": {"type": "string"},
    "action": {"type": "string"},
    "secret": {"type": "string"},
    "severity": {"type": "string", "enum": sorted(audit.SEVERITIES)},
    "since": _INT,
    "until": _INT,
    "limit": _INT,
    "before": _INT,
}
QUERIES: dict[tuple[str, str], dict[str, dict[str, Any]]] = {
    ("GET", "/api/projects/{project}/secrets"): {"deleted": {"type": "string", "enum": ["true", "false"]}},
    ("GET", "/api/secrets/{secret}"): {"version": {"type": "integer", "minimum": 1, "maximum": INT_MAX}},
    ("GET", "/api/audit/{chain}"): _AUDIT_FILTERS,
    ("GET", "/api/audit/{chain}/export"): {"since": _INT},
    ("GET", "/api/audit/{chain}/proof/inclusion"): {"seq": _INT, "treeSize": _INT},
    ("GET", "/api/audit/{chain}/proof/consistency"): {"first": _INT, "second": _INT},
    ("GET", "/api/audit-streams"): {"vault": {"type": "string", "maxLength": 64}},
    ("GET", "/api/audit-streams/{stream}/deliveries"): {"limit": _INT},
    ("GET", "/api/role-bindings"): {"vault": {"type": "string", "maxLength": 64}},
    ("GET", "/api/secrets/{secret}/rotation"): {"limit": _INT},
    ("GET", "/api/vaults/{vault}/leases"): {
        "dynamic": {"type": "string", "maxLength": 64},
        "machine": {"type": "string", "maxLength": 64},
        "project": {"type": "string", "maxLength": 64},
        "state": {"type": "string", "maxLength": 64},
        "cursor": {"type": "string", "maxLength": 64},
        "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
    },
    ("DELETE", "/api/dynamic-secrets/{id}"): {"revoke": {"type": "string", "enum": ["true", "false"]}},
}
# Routes anyone may call (no bearer token, no signature).
PUBLIC = frozenset(
    {
        *sys.UNSEALED_NOT_REQUIRED,
        "/api/auth/login",
        "/api/auth/oidc",
        "/api/auth/oidc/{provider}/start",
        "/api/auth/oidc/{provider}/finish",
        "/api/auth/oidc/{provider}/device",
        "/api/auth/oidc/{provider}/device/poll",
        "/v1/{vault}/enroll/register",
        "/v1/bootstrap/{token}",
        "/api/audit/public-key",
    }
)
SIGNED: list[dict[str, list[str]]] = [{"machineId": [], "timestamp": [], "nonce": [], "signature": []}]
_TYPES = {str: "string", int: "integer", bool: "boolean", dict: "object", list: "array"}
_ERRORS = {
    "400": "invalid input",
    "401": "not authenticated",
    "403": "permission denied",
    "404": "not found (also: another vault's id)",
    "409": "conflict",
    "413": "body too large",
    "423": "frozen by a canary",
    "429": "rate limited",
    "503": "sealed, or the store is unavailable",
}


def field_schema(spec: Field) -> dict[str, Any]:
    types = spec.type if isinstance(spec.type, tuple) else (spec.type,)
    names = [_TYPES[t] for t in types]
    out: dict[str, Any] = {"type": names[0] if len(names) == 1 else names}
    if spec.max_len is not None:
        for name, key in (("string", "maxLength"), ("array", "maxItems"), ("object", "maxProperties")):
            if name in names:
                out[key] = spec.max_len
    if "integer" in names:
        if spec.min_value is not None:
            out["minimum"] = spec.min_value
        out["maximum"] = INT_MAX if spec.max_value is None else spec.max_value
    return out


def body_schema(fields: dict[str, Field]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "object",
        "properties": {name: field_schema(spec) for name, spec in fields.items()},
        "additionalProperties": False,
    }
    required = [name for name, spec in fields.items() if spec.required]
    if required:
        out["required"] = required
    return out


def template(path: str) -> str:
    """``/api/machines/{machine}/{change:str}`` -> ``/api/machines/{machine}/{change}``."""
    return re.sub(r"\{(\w+):\w+\}", r"{\1}", path)


def operation(method: str, path: str, summary: str) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": f"{method.lower()}{re.sub(r'[^A-Za-z0-9]+', '_', path)}",
        "summary": summary,
        "responses": {
            "200": {"description": "success (JSON, or text for scripts)"},
            **{code: {"$ref": "#/components/responses/Error"} for code in _ERRORS},
        },
    }
    if method == "POST":
        op["responses"]["201"] = {"description": "created"}
    params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string", "maxLength": 255}}
        for name in re.findall(r"\{(\w+)\}", path)
    ]
    params += [
        {"name": name, "in": "query", "required": False, "schema": schema}
        for name, schema in QUERIES.get((method, path), {}).items()
    ]
    if params:
        op["parameters"] = params
    fields = BODIES.get((method, path))
    if fields is not None:
        op["requestBody"] = {
            "required": any(spec.required for spec in fields.values()),
            "content": {"application/json": {"schema": body_schema(fields)}},
        }
    if path in PUBLIC:
        op["security"] = []
    elif path.startswith("/v1/"):
        op["security"] = SIGNED
    return op


def document(routes: list[BaseRoute]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        if not isinstance(route, Route) or not route.path.startswith(("/api/", "/v1/")):
            continue
        path = template(route.path)
        summary = (route.endpoint.__doc__ or route.name or path).strip().splitlines()[0][:200]
        for method in sorted((route.methods or set()) - {"HEAD"}):
            paths.setdefault(path, {})[method.lower()] = operation(method, path, summary)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Sikker",
            "version": "1",
            "description": "Admin API (/api, bearer tokens) and machine API (/v1, Ed25519-signed "
            "requests: X-Signature over METHOD:PATH:TIMESTAMP:NONCE:sha256hex(body)).",
        },
        "paths": paths,
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "machineId": {"type": "apiKey", "in": "header", "name": "X-Machine-Id"},
                "timestamp": {"type": "apiKey", "in": "header", "name": "X-Timestamp"},
                "nonce": {"type": "apiKey", "in": "header", "name": "X-Nonce"},
                "signature": {"type": "apiKey", "in": "header", "name": "X-Signature"},
            },
            "responses": {
                "Error": {
                    "description": "an error: " + "; ".join(f"{k} {v}" for k, v in _ERRORS.items()),
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {"error": {"type": "string"}},
                                "required": ["error"],
                            }
                        }
                    },
                }
            },
        },
    }


async def openapi(request: Request) -> Response:
    """GET /api/openapi.json: this document (no token needed; answered while sealed)."""
    state = request.app.state
    if getattr(state, "openapi", None) is None:
        state.openapi = document(request.app.routes)
    return ok(state.openapi)


ROUTES = [Route(PATH, openapi, methods=["GET"])]

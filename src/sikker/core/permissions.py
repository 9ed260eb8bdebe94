"""Roles and the one permission decision every admin route asks (pure: no I/O).

A principal holds role bindings (``RoleBinding``): a role at a vault (the vault and
all its projects) or at one project (that project only, plus the vault's name). The
root token holds none and may do everything (break-glass; every use is audited).

``decide`` answers one question -- may this principal do ``action`` on this vault
(and project)? -- with ``None`` (yes) or the error to raise:

- no binding touches the vault, or only bindings of other projects when a project is
  named: ``NotFound`` with the caller's message, the same 404 as a missing object, so
  ids never leak across tenants or projects;
- a binding sees it but no role of the covering bindings allows the action:
  ``PermissionDenied`` naming the roles and the action.

Actions are ``resource:action``. Root-only actions (``ROOT_ONLY``) are granted by no
role. Callers gather the facts (which vault and project an object is in); they never
decide anything else.
"""

from __future__ import annotations

from sikker.core.model import Principal
from sikker.errors import NotFound, PermissionDenied, SikkerError

# -- actions -------------------------------------------------------------------------
VAULT_READ = "vault:read"  # see a vault's name (any binding in the vault has it)
PROJECT_READ = "project:read"  # see a project's name and metadata
PROJECT_WRITE = "project:write"  # create and delete projects
PROJECT_UNFREEZE = "project:unfreeze"  # unfreeze after a canary trip
SECRET_LIST = "secret:list"  # names, metadata, versions list, rotation status; never values
SECRET_READ = "secret:read"  # values
SECRET_WRITE = "secret:write"  # create, update, roll back, trash, restore
MACHINE_MANAGE = "machine:manage"  # list machines, rename, approve/disable/enable/revoke, membership
ENROLLMENT_MANAGE = "enrollment:manage"  # enrollment tokens
GRANT_MANAGE = "grant:manage"  # which machines read which secrets
CANARY_MANAGE = "canary:manage"  # create, list, show, enable/disable canaries
ROTATION_MANAGE = "rotation:manage"  # schedules, managed database credentials, rotate now
AUDIT_READ = "audit:read"  # read, export and verify (checkpoints, proofs) a vault's audit chain
STREAM_MANAGE = "stream:manage"  # network audit streams of a vault
TOKEN_LIST = "token:list"  # see the admin tokens of a vault (never their plaintext)
MEMBER_MANAGE = "member:manage"  # who holds which role (people)
DYNAMIC_MANAGE = "dynamic:manage"  # dynamic secret definitions, the orphan sweeper
LEASE_READ = "lease:read"  # list and show leases (user names, states; never passwords)
LEASE_MANAGE = "lease:manage"  # renew, revoke, forget leases

# Root only: granted by no role.
VAULT_CREATE = "vault:create"
TOKEN_MANAGE = "token:manage"  # create and revoke admin tokens (of any vault)
SEAL_MANAGE = "seal:manage"  # seal the server, reset unseal progress
KEY_ROTATE = "key:rotate"  # new project key versions, rewrap
AUDIT_SYSTEM = "audit:system"  # the system audit chain (seal events, failed authentications)
STREAM_FILE = "stream:file"  # file (JSON lines) audit streams: they write on the server's disk
STREAM_ALL = "stream:all"  # streams of every vault (cluster-wide)
USER_MANAGE = "user:manage"  # create, list, disable, enable, delete people's accounts

ROOT_ONLY: dict[str, str] = {
    VAULT_CREATE: "create vaults",
    TOKEN_MANAGE: "create or revoke admin tokens",
    SEAL_MANAGE: "seal the server or reset unseal progress",
    KEY_ROTATE: "rotate keys",
    AUDIT_SYSTEM: "read the system audit chain",
    STREAM_FILE: (
        "add a file (jsonl) stream: it writes on the server's disk. "
        "Use a webhook or syslog stream, or ask the operator"
    ),
    STREAM_ALL: "stream every vault",
    USER_MANAGE: "manage user accounts",
}

# -- roles ---------------------------------------------------------------------------
_VIEW = frozenset({VAULT_READ, PROJECT_READ, SECRET_LIST, LEASE_READ})
_DEVELOP = _VIEW | {
    SECRET_READ,
    SECRET_WRITE,
    MACHINE_MANAGE,
    ENROLLMENT_MANAGE,
    GRANT_MANAGE,
    ROTATION_MANAGE,
    DYNAMIC_MANAGE,
    LEASE_MANAGE,
}
_ADMIN = _DEVELOP | {
    PROJECT_WRITE,
    PROJECT_UNFREEZE,
    CANARY_MANAGE,
    AUDIT_READ,
    STREAM_MANAGE,
    TOKEN_LIST,
}

ROLES: dict[str, frozenset[str]] = {
    "owner": _ADMIN | {MEMBER_MANAGE},
    "admin": _ADMIN,
    "developer": _DEVELOP,
    "viewer": _VIEW,
    "auditor": frozenset({VAULT_READ, PROJECT_READ, AUDIT_READ, LEASE_READ}),
}
ACTIONS: tuple[str, ...] = tuple(sorted(set().union(*ROLES.values()) | set(ROOT_ONLY)))


def decide(
    principal: Principal,
    action: str,
    vault_id: str | None,
    project_id: str | None = None,
    *,
    missing: str = "not found",
) -> SikkerError | None:
    """``None`` if ``principal`` may do ``action`` on ``vault_id`` (and ``project_id``),
    otherwise the error to raise; ``missing`` is the message of the 404 a caller that
    cannot see the object gets (the same as for an object that does not exist)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")  # a programming error, not a denial
    if principal.kind == "root":
        return None
    if vault_id is None:  # server-wide: nothing to hide, nobody but root
        return PermissionDenied(f"only the root token can {ROOT_ONLY.get(action, action)}")
    touching = [b for b in principal.bindings if b.vault_id == vault_id]
    covering = [b for b in touching if b.project_id is None or b.project_id == project_id]
    if not touching or (project_id is not None and not covering):
        return NotFound(missing)
    if action in ROOT_ONLY:
        return PermissionDenied(f"only the root token can {ROOT_ONLY[action]}")
    if not covering:  # only project bindings, asked about the vault itself: its name, no more
        if action == VAULT_READ:
            return None
        roles = sorted({b.role for b in touching})
        return PermissionDenied(
            f"{_role_names(roles)} bound to a project may not {action} at the vault level"
        )
    roles = sorted({b.role for b in covering})
    if not any(action in ROLES.get(role, frozenset()) for role in roles):
        return PermissionDenied(f"{_role_names(roles)} may not {action}")
    if principal.ceiling is not None and action not in ROLES.get(principal.ceiling, frozenset()):
        return PermissionDenied(f"this token is limited to role {principal.ceiling}, which may not {action}")
    return None


def allowed(principal: Principal, action: str, vault_id: str | None, project_id: str | None = None) -> bool:
    """``decide`` as a filter for listings: True when nothing stands in the way."""
    return decide(principal, action, vault_id, project_id) is None


def decide_anywhere(principal: Principal, action: str) -> SikkerError | None:
    """For listings across vaults: ``None`` if ``action`` is allowed at one vault at least
    (the listing then filters with ``allowed``), otherwise the error to raise."""
    if principal.kind == "root":
        return None
    first: SikkerError = PermissionDenied(f"no role binding allows {action}")
    for i, vault_id in enumerate(dict.fromkeys(b.vault_id for b in principal.bindings)):
        problem = decide(principal, action, vault_id)
        if problem is None:
            return None
        first = problem if i == 0 else first
    return first


def _role_names(roles: list[str]) -> str:
    return ("role " if len(roles) == 1 else "roles ") + ", ".join(roles)

"""The one permission decision, every role x every action x every scope (core/permissions.py).

The expected grants are spelled out here again, apart from ``ROLES``, so a change to the
role table must be made twice: once on purpose, once here."""

from __future__ import annotations

import itertools

import pytest

from sikker.core import permissions as p
from sikker.core.model import Principal, RoleBinding
from sikker.errors import NotFound, PermissionDenied

V, OTHER_V = "v-1", "v-2"
P, OTHER_P = "p-1", "p-2"

EXPECTED: dict[str, set[str]] = {
    "owner": {
        "vault:read", "project:read", "project:write", "project:unfreeze", "secret:list",
        "secret:read", "secret:write", "machine:manage", "enrollment:manage", "grant:manage",
        "canary:manage", "rotation:manage", "audit:read", "stream:manage", "token:list",
        "member:manage", "dynamic:manage", "lease:read", "lease:manage",
    },
    "admin": {
        "vault:read", "project:read", "project:write", "project:unfreeze", "secret:list",
        "secret:read", "secret:write", "machine:manage", "enrollment:manage", "grant:manage",
        "canary:manage", "rotation:manage", "audit:read", "stream:manage", "token:list",
        "dynamic:manage", "lease:read", "lease:manage",
    },
    "developer": {
        "vault:read", "project:read", "secret:list", "secret:read", "secret:write",
        "machine:manage", "enrollment:manage", "grant:manage", "rotation:manage",
        "dynamic:manage", "lease:read", "lease:manage",
    },
    "viewer": {"vault:read", "project:read", "secret:list", "lease:read"},
    "auditor": {"vault:read", "project:read", "audit:read", "lease:read"},
}  # fmt: skip
ROOT_ONLY = {
    "vault:create", "token:manage", "seal:manage", "key:rotate", "audit:system", "stream:file",
    "stream:all", "user:manage",
}  # fmt: skip


def test_the_tables_name_the_same_roles_and_actions() -> None:
    assert set(p.ROLES) == set(EXPECTED)
    assert set(p.ROOT_ONLY) == ROOT_ONLY
    assert set(p.ACTIONS) == set().union(*EXPECTED.values()) | ROOT_ONLY
    assert not ROOT_ONLY & set().union(*p.ROLES.values()), "a root-only action is granted by a role"


def _principal(role: str, project: str | None) -> Principal:
    return Principal("user", "s-1", None, (RoleBinding(role, V, project),), "u-1", "ann")


# (binding's project, asked vault, asked project) -> "allow if the role has it" | "404" | "vault name only"
SCOPES = [
    ("vault binding, the vault", None, V, None, "role"),
    ("vault binding, a project of it", None, V, P, "role"),
    ("vault binding, another vault", None, OTHER_V, None, "404"),
    ("vault binding, another vault's project", None, OTHER_V, OTHER_P, "404"),
    ("project binding, its project", P, V, P, "role"),
    ("project binding, another project", P, V, OTHER_P, "404"),
    ("project binding, the vault itself", P, V, None, "vault name only"),
    ("project binding, another vault", P, OTHER_V, None, "404"),
]
CASES = [
    pytest.param(role, action, bound, vault, project, rule, id=f"{role}-{action}-{label}")
    for role, action, (label, bound, vault, project, rule) in itertools.product(
        sorted(EXPECTED), sorted(p.ACTIONS), SCOPES
    )
]


@pytest.mark.parametrize(("role", "action", "bound", "vault", "project", "rule"), CASES)
def test_every_role_action_and_scope(
    role: str, action: str, bound: str | None, vault: str, project: str | None, rule: str
) -> None:
    found = p.decide(_principal(role, bound), action, vault, project, missing="thing x not found")
    if rule == "404":
        assert isinstance(found, NotFound) and found.message == "thing x not found"
    elif action in ROOT_ONLY:
        assert isinstance(found, PermissionDenied) and "only the root token" in found.message
    elif rule == "vault name only":
        if action == "vault:read":
            assert found is None
        else:
            assert isinstance(found, PermissionDenied) and action in found.message
    elif action in EXPECTED[role]:
        assert found is None
    else:
        assert isinstance(found, PermissionDenied)
        assert role in found.message and action in found.message


@pytest.mark.parametrize("action", sorted(p.ACTIONS))
def test_root_may_do_everything_everywhere(action: str) -> None:
    root = Principal("root", "t-root", None)
    for vault, project in ((None, None), (V, None), (V, P), (OTHER_V, OTHER_P)):
        assert p.decide(root, action, vault, project) is None


@pytest.mark.parametrize("action", sorted(ROOT_ONLY))
def test_server_wide_actions_are_refused_to_every_binding(action: str) -> None:
    owner = _principal("owner", None)
    found = p.decide(owner, action, None)
    assert isinstance(found, PermissionDenied) and "only the root token" in found.message


def test_no_binding_sees_nothing() -> None:
    nobody = Principal("user", "s-1", None, (), "u-1", "ann")
    assert isinstance(p.decide(nobody, "vault:read", V, missing="vault v-1 not found"), NotFound)


def test_the_widest_covering_binding_wins() -> None:
    both = Principal(
        "user", "s-1", None, (RoleBinding("viewer", V), RoleBinding("developer", V, P)), "u-1", "ann"
    )
    assert p.decide(both, "secret:read", V, P) is None
    assert isinstance(p.decide(both, "secret:read", V, OTHER_P), PermissionDenied)
    assert p.decide(both, "secret:list", V, OTHER_P) is None


def test_an_admin_token_without_bindings_is_admin_of_its_vault() -> None:
    token = Principal("admin", "t-1", V)
    assert token.bindings == (RoleBinding("admin", V),)
    assert p.decide(token, "secret:read", V, P) is None
    assert isinstance(p.decide(token, "secret:read", OTHER_V, OTHER_P), NotFound)


def test_an_unknown_action_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown action"):
        p.decide(Principal("root", "t", None), "secret:raed", V)


def test_a_listing_needs_the_action_at_one_vault_at_least() -> None:
    viewer_here_admin_there = Principal(
        "user", "s-1", None, (RoleBinding("viewer", V), RoleBinding("admin", OTHER_V)), "u-1", "ann"
    )
    assert p.decide_anywhere(viewer_here_admin_there, "token:list") is None
    assert p.allowed(viewer_here_admin_there, "token:list", OTHER_V)
    assert not p.allowed(viewer_here_admin_there, "token:list", V)
    found = p.decide_anywhere(_principal("viewer", None), "token:list")
    assert isinstance(found, PermissionDenied) and "viewer" in found.message
    nobody = Principal("user", "s-1", None, (), "u-1", "ann")
    assert isinstance(p.decide_anywhere(nobody, "token:list"), PermissionDenied)
    assert p.decide_anywhere(Principal("root", "t", None), "token:list") is None


def test_a_ceiling_limits_a_principal_to_what_both_allow() -> None:
    person = Principal("user", "ses_1", None, (RoleBinding("developer", "vault_a"),), "usr_1", "alice")
    narrowed = Principal("user", "ses_2", None, person.bindings, "usr_1", "alice", "viewer")
    assert p.decide(person, p.SECRET_READ, "vault_a") is None
    assert p.decide(narrowed, p.SECRET_LIST, "vault_a") is None
    assert "limited to role viewer" in str(p.decide(narrowed, p.SECRET_READ, "vault_a"))
    widened = Principal("user", "ses_3", None, person.bindings, "usr_1", "alice", "owner")
    assert p.decide(widened, p.MEMBER_MANAGE, "vault_a") is not None  # never wider than the person

"""The machine access decision, case by case (core/access.py)."""

from __future__ import annotations

import dataclasses

import pytest

from sikker.core.access import MachineFacts, ReadFacts, in_cidr, machine_refusal, read_refusal
from sikker.core.model import Machine
from sikker.errors import Locked, NotFound, PermissionDenied, SikkerError, Unauthenticated

NOW = 1_000_000
IP = "10.0.0.7"
MACHINE = Machine(
    id="m-1",
    vault_id="v-1",
    name="m",
    public_key=b"k" * 32,
    kind="standard",
    approved=True,
    enabled=True,
    hostname="h",
    allowed_cidr=None,
    enrollment_token_id=None,
    created_ms=0,
    expires_ms=None,
    revoked_ms=None,
    last_poll_ms=None,
)
ALLOWED = ReadFacts(
    machine=MachineFacts(MACHINE, has_frozen_project=False),
    secret_id="sk_1",
    secret_vault_id="v-1",
    secret_deleted=False,
    project_id="p-1",
    project_frozen=False,
    member=True,
    granted=True,
    canary=False,
)


def machine(**changes: object) -> ReadFacts:
    m = dataclasses.replace(MACHINE, **changes)  # type: ignore[arg-type]
    return dataclasses.replace(ALLOWED, machine=dataclasses.replace(ALLOWED.machine, machine=m))


def secret(**changes: object) -> ReadFacts:
    return dataclasses.replace(ALLOWED, **changes)  # type: ignore[arg-type]


CASES: list[tuple[str, ReadFacts, type[SikkerError] | None, str]] = [
    ("allowed", ALLOWED, None, ""),
    ("canary is served (and trips)", secret(canary=True), None, ""),
    ("revoked", machine(revoked_ms=1), Unauthenticated, "revoked"),
    ("expired", machine(expires_ms=NOW), Unauthenticated, "expired"),
    ("not yet expired", machine(expires_ms=NOW + 1), None, ""),
    ("pending", machine(approved=False), PermissionDenied, "pending approval"),
    ("disabled", machine(enabled=False), PermissionDenied, "disabled"),
    ("cidr mismatch", machine(allowed_cidr="192.168.0.0/16"), PermissionDenied, "address"),
    ("cidr match", machine(allowed_cidr="10.0.0.0/24"), None, ""),
    (
        "frozen other project",
        dataclasses.replace(ALLOWED, machine=MachineFacts(MACHINE, True)),
        Locked,
        "a project of this machine is frozen",
    ),
    ("frozen own project", secret(project_frozen=True), Locked, "project p-1 is frozen"),
    ("missing secret", secret(secret_vault_id=None), NotFound, "sk_1 not found"),
    ("other vault", secret(secret_vault_id="v-2"), NotFound, "sk_1 not found"),
    ("deleted", secret(secret_deleted=True), NotFound, "sk_1 not found"),
    ("no membership", secret(member=False), PermissionDenied, "not a member"),
    ("no grant", secret(granted=False), PermissionDenied, "no grant"),
    # Precedence: a frozen machine learns nothing about the secret; another vault's secret
    # looks exactly like a missing one, whatever the membership says.
    (
        "frozen beats missing",
        dataclasses.replace(ALLOWED, machine=MachineFacts(MACHINE, True), secret_vault_id=None),
        Locked,
        "frozen",
    ),
    ("other vault beats no grant", secret(secret_vault_id="v-2", granted=False), NotFound, "not found"),
    ("revoked beats everything", machine(revoked_ms=1, approved=False), Unauthenticated, "revoked"),
]


@pytest.mark.parametrize(("case", "facts", "error", "message"), CASES, ids=[c[0] for c in CASES])
def test_read_refusal(case: str, facts: ReadFacts, error: type[SikkerError] | None, message: str) -> None:
    problem = read_refusal(facts, IP, NOW)
    if error is None:
        assert problem is None
    else:
        assert type(problem) is error and message in problem.message


def test_machine_refusal_is_the_machine_part_of_every_read_decision() -> None:
    for _, facts, _, _ in CASES:
        machine_problem = machine_refusal(facts.machine, IP, NOW)
        if machine_problem is not None:
            read_problem = read_refusal(facts, IP, NOW)
            assert read_problem is not None and read_problem.message == machine_problem.message


@pytest.mark.parametrize(
    ("ip", "cidr", "inside"),
    [
        ("10.0.0.7", "10.0.0.0/8", True),
        ("11.0.0.7", "10.0.0.0/8", False),
        ("::1", "::1/128", True),
        ("::1", "10.0.0.0/8", False),
        ("not-an-ip", "10.0.0.0/8", False),
        ("10.0.0.7", "garbage", False),
    ],
)
def test_in_cidr(ip: str, cidr: str, inside: bool) -> None:
    assert in_cidr(ip, cidr) is inside

"""The machine access decision: the ONE place that decides whether a machine may be served.

Every path that serves a machine asks it: the full path (service/machine_plane.py) after it
gathered the facts in its transaction, and the read lane (service/read_lane.py) on every request
against the facts its cached plan holds. A path may gather facts differently, never decide
differently (tests/integration/test_access_paths.py runs every case through both).

Authentication (signature, timestamp window, nonce) happens before; this decides what an
authenticated machine may do. Pure: time and the source address are passed in.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from sikker.core.model import Machine
from sikker.errors import Locked, NotFound, PermissionDenied, SikkerError, Unauthenticated


@dataclass(frozen=True, slots=True)
class MachineFacts:
    machine: Machine
    has_frozen_project: bool  # ANY project the machine belongs to is frozen


@dataclass(frozen=True, slots=True)
class ReadFacts:
    """What a read of one secret by one machine depends on, besides time and address."""

    machine: MachineFacts
    secret_id: str
    secret_vault_id: str | None  # None: no such secret
    secret_deleted: bool
    project_id: str | None
    project_frozen: bool  # the secret's own project
    member: bool  # the machine belongs to the secret's project
    granted: bool  # the machine holds a grant on the secret
    canary: bool  # an enabled canary: allowed, and the read freezes its project(s)


def in_cidr(ip: str, cidr: str) -> bool:
    try:
        return ipaddress.ip_address(ip) in ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False


def machine_refusal(facts: MachineFacts, source_ip: str, now_ms: int) -> SikkerError | None:
    """Why this authenticated machine may do nothing now, or None. Every signed route asks."""
    machine = facts.machine
    if machine.revoked_ms is not None:
        return Unauthenticated("unknown or revoked machine")
    if machine.expires_ms is not None and machine.expires_ms <= now_ms:
        return Unauthenticated("machine has expired")
    if not machine.approved:
        return PermissionDenied("machine is pending approval")
    if not machine.enabled:
        return PermissionDenied("machine is disabled")
    if machine.allowed_cidr and not in_cidr(source_ip, machine.allowed_cidr):
        return PermissionDenied("requests from this address are not allowed for this machine")
    if facts.has_frozen_project:
        return Locked("a project of this machine is frozen (a canary was read)")
    return None


def read_refusal(facts: ReadFacts, source_ip: str, now_ms: int) -> SikkerError | None:
    """Why this machine may not read this secret now, or None (served; a canary then trips).

    Another vault's secret and a missing one get the same answer: a machine learns nothing
    about ids outside its vault."""
    problem = machine_refusal(facts.machine, source_ip, now_ms)
    if problem is not None:
        return problem
    if (
        facts.secret_vault_id is None
        or facts.secret_vault_id != facts.machine.machine.vault_id
        or facts.secret_deleted
    ):
        return NotFound(f"secret {facts.secret_id} not found")
    if not facts.member:
        return PermissionDenied("machine is not a member of the secret's project")
    if not facts.granted:
        return PermissionDenied("machine has no grant on this secret")
    if facts.project_frozen:
        return Locked(f"project {facts.project_id} is frozen (a canary was read); an admin must unfreeze it")
    return None

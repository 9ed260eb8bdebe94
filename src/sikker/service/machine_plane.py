"""The machine plane: enrollment and Ed25519-signed reads (SikkerKey wire contract).

Order of checks for a signed request (DESIGN.md, request path):
lockout -> machine lookup -> timestamp window -> signature -> nonce (recorded
only after the signature verifies) -> machine state -> secret, membership,
grant -> decrypt -> audit committed -> respond. Refusals are audited too.
"""

from __future__ import annotations

import ipaddress
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from sikker.core import signing, values
from sikker.core.audit import SYSTEM_CHAIN, Action, Actor
from sikker.core.lockout import Lockout
from sikker.core.model import GrantedSecret, Machine, Project
from sikker.crypto import signature
from sikker.errors import (
    InvalidInput,
    Locked,
    NotFound,
    PermissionDenied,
    RateLimited,
    SikkerError,
    Unauthenticated,
)
from sikker.service.base import Deps, open_version
from sikker.service.freeze import check_not_frozen, trip_if_canary
from sikker.service.machines import enrollment_hash
from sikker.storage import audit as audit_store
from sikker.storage import canaries as canary_store
from sikker.storage import machines as machine_store
from sikker.storage import secrets as secret_store
from sikker.storage import vaults as vault_store

T = TypeVar("T")
NONCE_TTL_MS = 600_000
POLL_MIN_INTERVAL_MS = 9_500  # 10 s, less a little for network jitter


@dataclass(frozen=True, slots=True)
class SignedRequest:
    method: str
    path: str
    query: bytes
    body: bytes
    machine_id: str
    timestamp: str
    nonce: str
    signature: str
    malformed: list[str]  # names of missing or malformed signature headers
    source_ip: str
    user_agent: str


class MachinePlane:
    def __init__(self, deps: Deps, lockout: Lockout | None = None) -> None:
        self.deps = deps
        self.lockout = lockout or Lockout()
        self._lock = threading.Lock()

    # -- failures ---------------------------------------------------------------------
    def check_lockout(self, source_ip: str) -> None:
        if self.locked_out(source_ip, self.deps.clock()):
            raise RateLimited("too many failed authentications from this address; retry later")

    def locked_out(self, source_ip: str, now_ms: int) -> bool:
        with self._lock:
            return self.lockout.locked(source_ip, now_ms)

    def _refuse(
        self,
        error: SikkerError,
        chain: str,
        actor: Actor,
        action: Action,
        target: dict[str, str],
        count_failure: bool,
    ) -> SikkerError:
        """Audit a refusal (own transaction) and return the error to raise."""
        now = self.deps.clock()
        with self.deps.db.write() as conn:
            audit_store.append(conn, chain, now, actor, action, target, "denied", error.message)
            if count_failure:
                with self._lock:
                    started = self.lockout.fail(actor.source_ip, now)
                if started:
                    audit_store.append(
                        conn,
                        SYSTEM_CHAIN,
                        now,
                        actor,
                        Action.MACHINE_AUTH_LOCKOUT,
                        {},
                        "denied",
                        "source locked out after repeated failures",
                    )
        return error

    # -- enrollment ---------------------------------------------------------------------
    def enroll(
        self,
        vault_id: str,
        token: str,
        public_key_b64: str,
        hostname: str,
        name: str | None,
        kind: str,
        source_ip: str,
        user_agent: str,
    ) -> Machine:
        self.check_lockout(source_ip)
        anonymous = Actor("anonymous", "-", source_ip, user_agent)
        public_key = signature.decode_public_key(public_key_b64)
        if public_key is None:
            raise InvalidInput("publicKey must be the base64 of a raw 32-byte Ed25519 public key")
        now = self.deps.clock()
        with self.deps.db.write() as conn:
            found = machine_store.find_enrollment(conn, enrollment_hash(token), for_update=True)
            problem: SikkerError | None = None
            if found is None or found.vault_id != vault_id:
                problem = Unauthenticated("enrollment token is invalid")
            elif found.revoked_ms is not None:
                problem = Unauthenticated("enrollment token is revoked")
            elif found.expires_ms <= now:
                problem = Unauthenticated("enrollment token has expired")
            elif found.uses >= found.max_uses:
                problem = Unauthenticated("enrollment token has no uses left")
            elif found.hostname_pattern and not re.fullmatch(found.hostname_pattern, hostname):
                problem = PermissionDenied("hostname does not match the token's hostname pattern")
            elif found.source_cidr and not _in_cidr(source_ip, found.source_cidr):
                problem = PermissionDenied("enrollment from this address is not allowed")
            if problem is None and found is not None:
                machine_id = str(uuid.uuid4())
                machine = Machine(
                    id=machine_id,
                    vault_id=vault_id,
                    name=_machine_name(found.name_pattern, name, hostname, machine_id),
                    public_key=public_key,
                    kind=kind,
                    approved=kind == "ephemeral" or found.approval == "auto",
                    enabled=True,
                    hostname=hostname,
                    allowed_cidr=found.source_cidr,
                    enrollment_token_id=found.id,
                    created_ms=now,
                    expires_ms=now + found.machine_ttl_s * 1000 if found.machine_ttl_s else None,
                    revoked_ms=None,
                    last_poll_ms=None,
                )
                machine_store.insert_machine(conn, machine)
                machine_store.use_enrollment(conn, found.id)
                for project_id in found.project_ids:
                    if vault_store.get_project(conn, project_id) is not None:
                        machine_store.add_membership(conn, machine_id, project_id, now)
                for secret_id in found.secret_ids:
                    secret = secret_store.get_secret(conn, secret_id)
                    if secret is not None and secret.deleted_ms is None:
                        machine_store.add_grant(conn, machine_id, secret_id, now)
                actor = Actor("machine", machine_id, source_ip, user_agent)
                audit_store.append(
                    conn,
                    vault_id,
                    now,
                    actor,
                    Action.MACHINE_ENROLL,
                    {
                        "machine": machine_id,
                        "enrollment_token": found.id,
                        "kind": kind,
                        "approved": str(machine.approved).lower(),
                    },
                )
                return machine
        chain = vault_id if found is not None and found.vault_id == vault_id else SYSTEM_CHAIN
        assert problem is not None
        raise self._refuse(
            problem,
            chain,
            anonymous,
            Action.MACHINE_ENROLL,
            {"vault": vault_id[:40]},
            count_failure=isinstance(problem, Unauthenticated),
        )

    # -- authentication -------------------------------------------------------------------
    def _authenticate(self, req: SignedRequest, action: Action, target: dict[str, str]) -> Machine:
        """Identity checks that need no transaction; failures are audited and counted."""
        self.check_lockout(req.source_ip)
        anonymous = Actor("machine", req.machine_id[:64] or "-", req.source_ip, req.user_agent)
        if req.malformed:
            raise self._refuse(
                Unauthenticated(f"missing or malformed {', '.join(req.malformed)} header"),
                SYSTEM_CHAIN,
                anonymous,
                Action.MACHINE_AUTH_FAIL,
                target,
                True,
            )
        with self.deps.db.read() as conn:
            machine = machine_store.get_machine(conn, req.machine_id)
        if machine is None or machine.revoked_ms is not None:
            raise self._refuse(
                Unauthenticated("unknown or revoked machine"),
                SYSTEM_CHAIN,
                anonymous,
                Action.MACHINE_AUTH_FAIL,
                target,
                True,
            )
        actor = Actor("machine", machine.id, req.source_ip, req.user_agent)
        now = self.deps.clock()
        if not signing.fresh(req.timestamp, now / 1000):
            raise self._refuse(
                Unauthenticated("request timestamp is outside the allowed window"),
                machine.vault_id,
                actor,
                Action.MACHINE_AUTH_FAIL,
                target,
                True,
            )
        message = signing.canonical(req.method, req.path, req.timestamp, req.nonce, req.body)
        if not signature.verify(machine.public_key, req.signature, message):
            raise self._refuse(
                Unauthenticated("invalid signature"),
                machine.vault_id,
                actor,
                Action.MACHINE_AUTH_FAIL,
                target,
                True,
            )
        if machine.expires_ms is not None and machine.expires_ms <= now:
            raise self._refuse(
                Unauthenticated("machine has expired"),
                machine.vault_id,
                actor,
                Action.MACHINE_AUTH_FAIL,
                target,
                True,
            )
        if req.query:
            raise self._refuse(
                InvalidInput("query strings are not allowed on signed routes"),
                machine.vault_id,
                actor,
                action,
                target,
                False,
            )
        return machine

    def state_problem(self, machine: Machine, source_ip: str) -> SikkerError | None:
        if not machine.approved:
            return PermissionDenied("machine is pending approval")
        if not machine.enabled:
            return PermissionDenied("machine is disabled")
        if machine.allowed_cidr and not _in_cidr(source_ip, machine.allowed_cidr):
            return PermissionDenied("requests from this address are not allowed for this machine")
        return None

    def run_signed(
        self,
        req: SignedRequest,
        action: Action,
        target: dict[str, str],
        work: Callable[[Connection, Machine, Actor], T],
        prepare: Callable[[], object] | None = None,
    ) -> T:
        """Authenticate; parse the body (``prepare``) only then; then in ONE transaction consume
        the nonce, check state and do the work (which writes its own audit records).
        Refusals commit their audit record (and the nonce, once the signature verified)."""
        machine = self._authenticate(req, action, target)
        actor = Actor("machine", machine.id, req.source_ip, req.user_agent)
        if prepare is not None:
            try:
                prepare()
            except InvalidInput as e:
                raise self._refuse(e, machine.vault_id, actor, action, target, False) from None
        now = self.deps.clock()
        problem: SikkerError | None = None
        result: Any = None
        with self.deps.db.write() as conn:
            try:
                with conn.begin_nested():
                    machine_store.record_nonce(conn, machine.id, req.nonce, now + NONCE_TTL_MS)
            except IntegrityError:
                problem = Unauthenticated("replayed request (nonce already used)")
            if problem is None:
                problem = self.state_problem(machine, req.source_ip)
            if problem is None and canary_store.frozen_projects_of(conn, machine.id):
                problem = Locked("a project of this machine is frozen (a canary was read)")
            if problem is None:
                try:
                    with conn.begin_nested():
                        result = work(conn, machine, actor)
                except (NotFound, PermissionDenied, RateLimited, InvalidInput, Locked) as e:
                    problem = e
            if problem is not None:
                audit_store.append(
                    conn,
                    machine.vault_id,
                    now,
                    actor,
                    Action.MACHINE_AUTH_FAIL if isinstance(problem, Unauthenticated) else action,
                    target,
                    "denied",
                    problem.message,
                )
        if problem is not None:
            if isinstance(problem, Unauthenticated):
                with self._lock:
                    self.lockout.fail(req.source_ip, now)
            raise problem
        return result  # type: ignore[no-any-return]

    # -- reads ---------------------------------------------------------------------------
    def read(self, req: SignedRequest, secret_id: str) -> str:
        target = {"secret": secret_id[:40]}

        def work(conn: Connection, machine: Machine, actor: Actor) -> str:
            secret = secret_store.get_secret(conn, secret_id)
            if secret is None or secret.vault_id != machine.vault_id or secret.deleted_ms is not None:
                raise NotFound(f"secret {secret_id} not found")
            member, granted = machine_store.access(conn, machine.id, secret.id)
            if not member:
                raise PermissionDenied("machine is not a member of the secret's project")
            if not granted:
                raise PermissionDenied("machine has no grant on this secret")
            project = vault_store.get_project(conn, secret.project_id, for_share=True)
            assert project is not None
            check_not_frozen(project)  # a freeze committed while this request waited
            plaintext = open_version(self.deps, conn, project, secret.id, secret.current_version)
            trip_if_canary(conn, secret, actor, self.deps.clock())
            machine_store.set_delivered(conn, machine.id, {secret.id: secret.current_version})
            audit_store.append(
                conn,
                machine.vault_id,
                self.deps.clock(),
                actor,
                Action.MACHINE_SECRET_READ,
                {"project": secret.project_id, "secret": secret.id, "version": str(secret.current_version)},
            )
            return plaintext.decode()

        return self.run_signed(req, Action.MACHINE_SECRET_READ, target, work)

    def readable(
        self, req: SignedRequest, project_of: Callable[[], str | None], action: Action
    ) -> list[GrantedSecret]:
        """Metadata of the secrets this machine may read (no values)."""
        parsed: list[str | None] = []

        def work(conn: Connection, machine: Machine, actor: Actor) -> list[GrantedSecret]:
            project_id = parsed[0]
            target = {"project": project_id[:40]} if project_id else {}
            if project_id is not None:
                projects = {p for p, _ in machine_store.member_projects(conn, machine.id)}
                if project_id not in projects:
                    raise PermissionDenied("machine is not a member of this project")
            found = machine_store.readable_secrets(conn, machine.id, project_id)
            audit_store.append(
                conn, machine.vault_id, self.deps.clock(), actor, action, target | {"count": str(len(found))}
            )
            return found

        return self.run_signed(req, action, {}, work, lambda: parsed.append(project_of()))

    def projects(self, req: SignedRequest) -> list[tuple[str, str]]:
        def work(conn: Connection, machine: Machine, actor: Actor) -> list[tuple[str, str]]:
            found = machine_store.member_projects(conn, machine.id)
            audit_store.append(
                conn,
                machine.vault_id,
                self.deps.clock(),
                actor,
                Action.MACHINE_PROJECT_LIST,
                {"count": str(len(found))},
            )
            return found

        return self.run_signed(req, Action.MACHINE_PROJECT_LIST, {}, work)

    def export(
        self, req: SignedRequest, project_of: Callable[[], str | None]
    ) -> list[tuple[GrantedSecret, str]]:
        parsed: list[str | None] = []

        def work(conn: Connection, machine: Machine, actor: Actor) -> list[tuple[GrantedSecret, str]]:
            project_id = parsed[0]
            if project_id is not None:
                projects = {p for p, _ in machine_store.member_projects(conn, machine.id)}
                if project_id not in projects:
                    raise PermissionDenied("machine is not a member of this project")
            out = []
            now = self.deps.clock()
            found = machine_store.readable_secrets(conn, machine.id, project_id)
            locked: dict[str, Project] = {}
            for pid in {i.project_id for i in found}:
                project = vault_store.get_project(conn, pid, for_share=True)
                assert project is not None
                check_not_frozen(project)
                locked[pid] = project
            decoys = canary_store.canary_ids(conn, [i.id for i in found])
            for item in found:
                if item.id in decoys:
                    secret = secret_store.get_secret(conn, item.id)
                    assert secret is not None
                    trip_if_canary(conn, secret, actor, self.deps.clock())
                plaintext = open_version(
                    self.deps, conn, locked[item.project_id], item.id, item.current_version
                )
                out.append((item, plaintext.decode()))
                audit_store.append(
                    conn,
                    machine.vault_id,
                    now,
                    actor,
                    Action.MACHINE_SECRET_EXPORT,
                    {"project": item.project_id, "secret": item.id, "version": str(item.current_version)},
                )
            machine_store.set_delivered(conn, machine.id, {i.id: i.current_version for i, _ in out})
            return out

        prepare = lambda: parsed.append(project_of())  # noqa: E731
        return self.run_signed(req, Action.MACHINE_SECRET_EXPORT, {}, work, prepare)

    def poll(self, req: SignedRequest, watch_of: Callable[[], list[str]]) -> dict[str, str]:
        """Only the watched secrets that changed since this machine last read them."""
        parsed: list[list[str]] = []

        def work(conn: Connection, machine: Machine, actor: Actor) -> dict[str, str]:
            watch = parsed[0]
            now = self.deps.clock()
            current = machine_store.get_machine(conn, machine.id)
            last = current.last_poll_ms if current else None
            if last is not None and now - last < POLL_MIN_INTERVAL_MS:
                raise RateLimited("poll at most every 10 seconds")
            machine_store.update_machine(conn, machine.id, last_poll_ms=now)
            readable = {s.id: s for s in machine_store.readable_secrets(conn, machine.id)}
            states = machine_store.secret_states(conn, watch)
            delivered = machine_store.delivered_versions(conn, machine.id, watch)
            changes: dict[str, str] = {}
            baselines: dict[str, int] = {}
            for secret_id in dict.fromkeys(watch):
                state = states.get(secret_id)
                if state is None or state[1]:
                    changes[secret_id] = "deleted"
                elif secret_id not in readable:
                    changes[secret_id] = "access_denied"
                elif secret_id not in delivered:
                    baselines[secret_id] = state[0]  # first sight: remember silently
                elif delivered[secret_id] != state[0]:
                    changes[secret_id] = "changed"
            machine_store.set_delivered(conn, machine.id, baselines)
            audit_store.append(
                conn,
                machine.vault_id,
                now,
                actor,
                Action.MACHINE_SECRET_POLL,
                {"watched": str(len(watch)), "changed": str(len(changes))},
            )
            return changes

        return self.run_signed(req, Action.MACHINE_SECRET_POLL, {}, work, lambda: parsed.append(watch_of()))

    def purge_nonces(self) -> int:
        with self.deps.db.write() as conn:
            return machine_store.purge_nonces(conn, self.deps.clock())


def _in_cidr(ip: str, cidr: str) -> bool:
    try:
        return ipaddress.ip_address(ip) in ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False


def _machine_name(pattern: str | None, requested: str | None, hostname: str, machine_id: str) -> str:
    if pattern:
        name = (
            pattern.replace("{uuid8}", machine_id.replace("-", "")[:8])
            .replace("{uuid}", machine_id)
            .replace("{hostname}", hostname)
        )
    else:
        name = requested or hostname or f"machine-{machine_id[:8]}"
    return name[: values.NAME_MAX]

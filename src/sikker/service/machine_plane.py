"""The machine plane: enrollment and Ed25519-signed reads (SikkerKey wire contract).

Order of checks for a signed request:
machine lookup -> timestamp window -> signature -> nonce (recorded only after the signature
verifies) -> the access decision (core/access.py: machine state, frozen projects, then for a
read the secret, membership, grant) -> decrypt -> audit committed -> respond. Refusals are
audited too, except failures from a throttled address or claimed machine (core/lockout.py),
which are refused cheaply; a request that authenticates is never throttled.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from sikker.core import access, hostnames, signing, values
from sikker.core.access import MachineFacts, ReadFacts
from sikker.core.audit import SYSTEM_CHAIN, Action, Actor
from sikker.core.lockout import Lockout
from sikker.core.model import GrantedSecret, Machine, Project, Secret
from sikker.core.signing import SignedRequest
from sikker.crypto import signature
from sikker.errors import (
    InvalidInput,
    Locked,
    NotFound,
    PermissionDenied,
    RateLimited,
    Replayed,
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
from sikker.storage.database import Connection, savepoint

T = TypeVar("T")
NONCE_TTL_MS = 600_000
POLL_MIN_INTERVAL_MS = 9_500  # 10 s, less a little for network jitter
EPHEMERAL_TTL_S = 86_400  # an ephemeral machine whose token sets no machine lifetime
THROTTLED = "too many failed authentications from this address or for this machine; retry later"


class DynamicReads(Protocol):
    """The read path of dynamic secrets (service/leases.py), plugged in by bootstrap."""

    def begin_read(
        self, conn: Connection, machine: Machine, actor: Actor, secret: Secret, project: Project, now: int
    ) -> object:
        """Inside the read's transaction: the value (str) of a reusable lease, or what to mint."""
        ...

    def finish_read(self, pending: object) -> str:
        """After the commit: mint the user and return the value."""
        ...


class MachinePlane:
    def __init__(self, deps: Deps, lockout: Lockout | None = None) -> None:
        self.deps = deps
        self.lockout = lockout if lockout is not None else Lockout()
        self._lock = threading.Lock()
        self.dynamic: DynamicReads | None = None

    # -- failures ---------------------------------------------------------------------
    def _throttled(self, keys: list[str], now_ms: int) -> bool:
        with self._lock:
            return any(self.lockout.locked(k, now_ms) for k in keys)

    def _count_failure(self, keys: list[str], now_ms: int) -> bool:
        """Count one failure against each key; True when a throttle started."""
        with self._lock:
            return any([self.lockout.fail(k, now_ms) for k in keys])

    def sweep_lockouts(self) -> None:
        with self._lock:
            self.lockout.sweep(self.deps.clock())

    def _refuse(
        self,
        error: SikkerError,
        chain: str,
        actor: Actor,
        action: Action,
        target: dict[str, str],
        keys: list[str],
    ) -> SikkerError:
        """Audit a refusal (own transaction) and return the error to raise.

        ``keys`` (source address, claimed machine) count the failure; while one of them is
        throttled the refusal is a cheap 429 with no record of its own (the throttle's start
        was recorded)."""
        now = self.deps.clock()
        if keys and self._throttled(keys, now):
            return RateLimited(THROTTLED)
        with self.deps.db.write() as conn:
            audit_store.append(conn, chain, now, actor, action, target, "denied", error.message)
            if keys and self._count_failure(keys, now):
                audit_store.append(
                    conn,
                    SYSTEM_CHAIN,
                    now,
                    actor,
                    Action.MACHINE_AUTH_LOCKOUT,
                    {},
                    "denied",
                    "failures from this source throttled after repeated failures",
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
        """Register a machine with an enrollment token. The token's approval mode applies to
        every kind; an ephemeral machine always expires. The hostname pattern is matched
        (linear time, RE2) before the write transaction starts."""
        hostname = values.check_name(hostname, "hostname")
        name = values.check_name(name, "name") if name else None
        anonymous = Actor("anonymous", "-", source_ip, user_agent)
        public_key = signature.decode_public_key(public_key_b64)
        if public_key is None:
            raise InvalidInput("publicKey must be the base64 of a raw 32-byte Ed25519 public key")
        digest = enrollment_hash(token)
        with self.deps.db.read() as conn:
            seen = machine_store.find_enrollment(conn, digest)
        checked = seen.hostname_pattern if seen is not None else None
        host_ok = checked is None or hostnames.matches(checked, hostname)
        now = self.deps.clock()
        with self.deps.db.write() as conn:
            found = machine_store.find_enrollment(conn, digest, for_update=True)
            problem: SikkerError | None = None
            if found is None or found.vault_id != vault_id:
                problem = Unauthenticated("enrollment token is invalid")
            elif found.revoked_ms is not None:
                problem = Unauthenticated("enrollment token is revoked")
            elif found.expires_ms <= now:
                problem = Unauthenticated("enrollment token has expired")
            elif found.uses >= found.max_uses:
                problem = Unauthenticated("enrollment token has no uses left")
            elif found.hostname_pattern and (found.hostname_pattern != checked or not host_ok):
                problem = PermissionDenied("hostname does not match the token's hostname pattern")
            elif found.source_cidr and not access.in_cidr(source_ip, found.source_cidr):
                problem = PermissionDenied("enrollment from this address is not allowed")
            if problem is None and found is not None:
                machine_id = str(uuid.uuid4())
                ttl_s = found.machine_ttl_s or (EPHEMERAL_TTL_S if kind == "ephemeral" else None)
                machine = Machine(
                    id=machine_id,
                    vault_id=vault_id,
                    name=_machine_name(found.name_pattern, name, hostname, machine_id),
                    public_key=public_key,
                    kind=kind,
                    approved=found.approval == "auto",
                    enabled=True,
                    hostname=hostname,
                    allowed_cidr=found.source_cidr,
                    enrollment_token_id=found.id,
                    created_ms=now,
                    expires_ms=now + ttl_s * 1000 if ttl_s else None,
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
            [source_ip] if isinstance(problem, Unauthenticated) else [],
        )

    # -- authentication -------------------------------------------------------------------
    def _authenticate(self, req: SignedRequest, action: Action, target: dict[str, str]) -> Machine:
        """Who is asking: identity checks that need no transaction; failures audited, counted."""
        anonymous = Actor("machine", req.machine_id[:64] or "-", req.source_ip, req.user_agent)
        if req.malformed:
            raise self._refuse(
                Unauthenticated(f"missing or malformed {', '.join(req.malformed)} header"),
                SYSTEM_CHAIN,
                anonymous,
                Action.MACHINE_AUTH_FAIL,
                target,
                [req.source_ip],
            )
        with self.deps.db.read() as conn:
            machine = machine_store.get_machine(conn, req.machine_id)
        if machine is None:
            raise self._refuse(
                Unauthenticated("unknown or revoked machine"),
                SYSTEM_CHAIN,
                anonymous,
                Action.MACHINE_AUTH_FAIL,
                target,
                [req.source_ip],
            )
        actor = Actor("machine", machine.id, req.source_ip, req.user_agent)
        keys = [req.source_ip, f"machine:{machine.id}"]
        now = self.deps.clock()
        if not signing.fresh(req.timestamp, now / 1000):
            error = Unauthenticated("request timestamp is outside the allowed window")
            raise self._refuse(error, machine.vault_id, actor, Action.MACHINE_AUTH_FAIL, target, keys)
        message = signing.canonical(req.method, req.path, req.timestamp, req.nonce, req.body)
        if not signature.verify(machine.public_key, req.signature, message):
            error = Unauthenticated("invalid signature")
            raise self._refuse(error, machine.vault_id, actor, Action.MACHINE_AUTH_FAIL, target, keys)
        if req.query:
            invalid = InvalidInput("query strings are not allowed on signed routes")
            raise self._refuse(invalid, machine.vault_id, actor, action, target, [])
        return machine

    def run_signed(
        self,
        req: SignedRequest,
        action: Action,
        target: dict[str, str],
        work: Callable[[Connection, Machine, Actor], T],
        prepare: Callable[[], object] | None = None,
    ) -> T:
        """Authenticate; parse the body (``prepare``) only then; then in ONE transaction consume
        the nonce, ask the access decision and do the work (which writes its own audit
        records). Refusals commit their audit record (and the nonce, once the signature
        verified)."""
        machine = self._authenticate(req, action, target)
        actor = Actor("machine", machine.id, req.source_ip, req.user_agent)
        if prepare is not None:
            try:
                prepare()
            except InvalidInput as e:
                raise self._refuse(e, machine.vault_id, actor, action, target, []) from None
        now = self.deps.clock()
        problem: SikkerError | None = None
        result: Any = None
        with self.deps.db.write() as conn:
            try:
                machine_store.record_nonce(conn, machine.id, req.nonce, now + NONCE_TTL_MS)
            except Replayed as e:
                problem = e
            if problem is None:
                facts = MachineFacts(machine, bool(canary_store.frozen_projects_of(conn, machine.id)))
                problem = access.machine_refusal(facts, req.source_ip, now)
            if problem is None:
                try:
                    with savepoint(conn):
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
                self._count_failure([req.source_ip, f"machine:{machine.id}"], now)
            raise problem
        return result  # type: ignore[no-any-return]

    # -- reads ---------------------------------------------------------------------------
    def read_facts(
        self, conn: Connection, machine: Machine, secret_id: str
    ) -> tuple[ReadFacts, Secret | None, Project | None]:
        """Gather the facts of the access decision for one secret (the full path's way)."""
        secret = secret_store.get_secret(conn, secret_id)
        project = None
        if secret is not None and secret.vault_id == machine.vault_id:
            # FOR SHARE: a freeze committed while this request waited is seen here.
            project = vault_store.get_project(conn, secret.project_id, for_share=True)
        member, granted = machine_store.access(conn, machine.id, secret_id)
        facts = ReadFacts(
            machine=MachineFacts(machine, bool(canary_store.frozen_projects_of(conn, machine.id))),
            secret_id=secret_id,
            secret_vault_id=secret.vault_id if secret is not None else None,
            secret_deleted=secret is not None and secret.deleted_ms is not None,
            project_id=secret.project_id if secret is not None else None,
            project_frozen=project is not None and project.frozen_ms is not None,
            member=member,
            granted=granted,
            canary=bool(canary_store.canary_ids(conn, [secret_id])),
        )
        return facts, secret, project

    def read(self, req: SignedRequest, secret_id: str) -> str:
        target = {"secret": secret_id[:40]}

        def work(conn: Connection, machine: Machine, actor: Actor) -> object:
            now = self.deps.clock()
            facts, secret, project = self.read_facts(conn, machine, secret_id)
            problem = access.read_refusal(facts, req.source_ip, now)
            if problem is not None:
                raise problem
            assert secret is not None and project is not None
            if secret.kind == "dynamic" and self.dynamic is not None:
                # A lease of this machine, or the start of a new one (minted after this commit).
                return self.dynamic.begin_read(conn, machine, actor, secret, project, now)
            plaintext = open_version(self.deps, conn, project, secret.id, secret.current_version)
            if facts.canary:
                trip_if_canary(conn, secret, actor, now)
            machine_store.set_delivered(conn, machine.id, {secret.id: secret.current_version})
            audit_store.append(
                conn,
                machine.vault_id,
                now,
                actor,
                Action.MACHINE_SECRET_READ,
                {"project": secret.project_id, "secret": secret.id, "version": str(secret.current_version)},
            )
            return plaintext.decode()

        result = self.run_signed(req, Action.MACHINE_SECRET_READ, target, work)
        if isinstance(result, str):
            return result
        assert self.dynamic is not None
        return self.dynamic.finish_read(result)

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
            # Dynamic secrets have no stored value: a lease is minted by reading one by id.
            found = [
                i for i in machine_store.readable_secrets(conn, machine.id, project_id) if i.kind != "dynamic"
            ]
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
            # Only this vault's secrets: another vault's id answers "deleted", like a missing one.
            states = machine_store.secret_states(conn, machine.vault_id, watch)
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

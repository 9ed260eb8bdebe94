"""The composition root: builds every service from the settings, once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sikker.config import Settings
from sikker.core.lockout import Lockout
from sikker.crypto.keyring import Keyring
from sikker.crypto.seal import KeyFileSeal
from sikker.service.audit import AuditService
from sikker.service.audit_streams import StreamService
from sikker.service.base import Clock, Deps, wall_clock_ms
from sikker.service.canaries import CanaryService
from sikker.service.dynamic import DynamicService
from sikker.service.dynamic_targets import Targets
from sikker.service.keys import KeyService
from sikker.service.leases import LeaseService
from sikker.service.machine_plane import MachinePlane
from sikker.service.machines import MachineAdmin
from sikker.service.people import PeopleService
from sikker.service.read_lane import ReadLane
from sikker.service.rotation import RotationService
from sikker.service.seal import SealService
from sikker.service.secrets import SecretService
from sikker.service.tokens import TokenService
from sikker.service.vaults import VaultService
from sikker.storage.database import Database
from sikker.storage.notifier import Listener


@dataclass(slots=True)
class Services:
    deps: Deps
    seal: SealService
    tokens: TokenService
    vaults: VaultService
    secrets: SecretService
    keys: KeyService
    machines: MachineAdmin
    plane: MachinePlane
    reads: ReadLane
    audit: AuditService
    streams: StreamService
    rotation: RotationService
    canaries: CanaryService
    people: PeopleService
    dynamic: DynamicService
    leases: LeaseService

    def follow_cluster(self) -> Callable[[], None]:
        """On PostgreSQL, follow other nodes' seal changes as they are notified (LISTEN/NOTIFY;
        the server also polls). Returns the function that stops following."""
        if self.deps.db.is_sqlite:
            return lambda: None
        listener = Listener(self.deps.db.url, lambda _event: self.seal.follow_cluster())
        listener.start()
        return listener.stop

    def close(self) -> None:
        self.reads.stop()
        self.streams.close()
        self.deps.keyring.clear()
        self.deps.db.dispose()


def bootstrap(settings: Settings, clock: Clock = wall_clock_ms, db: Database | None = None) -> Services:
    deps = Deps(db or Database(settings.database_url), Keyring(), settings, clock)
    auto = KeyFileSeal(settings.seal_key_file) if settings.seal_key_file else None
    people = PeopleService(deps)
    tokens = TokenService(deps, sessions=people)
    seal = SealService(deps, tokens, auto)
    audit = AuditService(deps, settings.audit_checkpoint_records, settings.audit_checkpoint_seconds * 1000)
    seal.on_unseal.append(audit.load_key)
    seal.on_seal.append(audit.forget_key)
    secrets = SecretService(deps)
    plane = MachinePlane(
        deps, Lockout(settings.auth_lockout_failures, 60_000, settings.auth_lockout_seconds * 1000)
    )
    reads = ReadLane(deps, plane)
    targets = Targets(deps)
    leases = LeaseService(deps, plane, targets)
    plane.dynamic = leases
    seal.on_seal.append(reads.cache.clear)
    return Services(
        deps=deps,
        seal=seal,
        tokens=tokens,
        vaults=VaultService(deps),
        secrets=secrets,
        keys=KeyService(deps),
        machines=MachineAdmin(deps),
        plane=plane,
        reads=reads,
        audit=audit,
        streams=StreamService(deps),
        rotation=RotationService(deps, secrets, plane),
        canaries=CanaryService(deps, secrets),
        people=people,
        dynamic=DynamicService(deps, targets, leases.attempt),
        leases=leases,
    )

"""The databases dynamic secrets mint users on: admin credentials, bounded connections, and
the sealed parts of a lease (its password and its revocation snapshot).

The server talks to a target database only OUTSIDE its own store transactions. Each call
opens a short-lived admin connection (connect timeout ``CONNECT_TIMEOUT_S``); at most
``PER_TARGET`` calls run at once per (engine, host, port, database, admin secret version), so a
slow or dead database ties up a bounded number of threads and fails only its own leases.

A vault admin chooses the host and the SERVER connects there, so every call follows the
outbound policy of audit streams and JWKS URLs (``core.netpolicy``): the host is resolved once,
every address checked, and the driver handed the checked address (``Connection.address``), so
a second lookup cannot rebind it. Loopback, private, link-local, multicast, reserved and cloud
metadata addresses are refused (``TargetRefused``, before any socket is opened) unless the
operator opened the network with ``dynamic_allowed_networks``. The same check runs for every
step, revocations of old leases included: a lease whose target became disallowed stays queued
and its revocation keeps failing until the operator opens the network again (or forgets it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

import orjson

from sikker.core import dynamic
from sikker.core.dynamic import Definition, Snapshot
from sikker.core.model import Project, Sealed
from sikker.core.netpolicy import IPAddress
from sikker.crypto import envelope
from sikker.crypto.envelope import Binding
from sikker.engines.base import Connection as Target
from sikker.engines.base import DynamicProvider, ProviderError, get_dynamic_provider
from sikker.errors import NotFound, SikkerError, Unavailable
from sikker.service.base import Deps, open_version, project_key
from sikker.service.streams.destination import Resolver, resolve, system_resolver
from sikker.storage import secrets as secret_store
from sikker.storage import vaults as vault_store
from sikker.storage.database import Connection

T = TypeVar("T")
CONNECT_TIMEOUT_S = 5
PER_TARGET = 4
ProviderFactory = Callable[[str, Target], DynamicProvider]


class DatabaseUnavailable(Unavailable):
    default_message = "the database of this dynamic secret is unreachable"


class TargetRefused(DatabaseUnavailable):
    """The host resolves to an address the server may not connect to; nothing was opened."""

    default_message = "the database of this dynamic secret is at an address that is not allowed"


def refusal(label: str, host: str, address: IPAddress) -> str:
    """Why ``host`` is refused: names the address and the operator's setting (no credentials)."""
    what = f"address {address}" if host.strip("[]") == str(address) else f"{host} ({address})"
    return (
        f"{label}: {what} is not allowed (loopback, private, link-local, multicast, reserved and "
        "cloud metadata addresses are refused); an operator can open the network with "
        "dynamic_allowed_networks (SIKKER_DYNAMIC_ALLOWED_NETWORKS)"
    )


class Targets:
    def __init__(
        self,
        deps: Deps,
        factory: ProviderFactory = get_dynamic_provider,
        resolver: Resolver = system_resolver,
    ) -> None:
        self.deps = deps
        self.factory = factory
        self.resolver = resolver
        self._gates: dict[tuple[object, ...], threading.BoundedSemaphore] = {}
        self._lock = threading.Lock()

    # -- admin credentials (decrypted only here, at mint/revoke time) --------------------------
    def admin_login(self, conn: Connection, vault_id: str, admin_secret_id: str) -> tuple[str, str, int]:
        """(username, password, version) of the admin secret; its trash does not matter (a
        revocation must still work), another vault's or a purged secret does."""
        secret = secret_store.get_secret(conn, admin_secret_id)
        if secret is None or secret.vault_id != vault_id:
            raise NotFound(f"admin secret {admin_secret_id} is gone")
        project = vault_store.get_project(conn, secret.project_id)
        if project is None or secret.kind != "structured":
            raise NotFound(f"admin secret {admin_secret_id} is not a structured secret")
        value = orjson.loads(open_version(self.deps, conn, project, secret.id, secret.current_version))
        if not isinstance(value.get("username"), str) or not isinstance(value.get("password"), str):
            raise NotFound(f"admin secret {admin_secret_id} needs 'username' and 'password' fields")
        return value["username"], value["password"], secret.current_version

    # -- network policy ------------------------------------------------------------------------
    def address(self, label: str, host: str, port: int) -> IPAddress:
        """The address to connect to: ``host`` resolved once, every address it gave allowed by
        ``dynamic_allowed_networks`` (read now, so a changed setting applies to the next call).

        Raises TargetRefused for a refused address, DatabaseUnavailable when ``host`` does not
        resolve; ``label`` starts the message."""
        allowed = self.deps.settings.dynamic_allowed_networks
        try:
            destination = resolve(label, host, port, allowed, self.resolver)
        except SikkerError as e:  # DeliveryError: no address
            detail = e.message.removeprefix(f"{label}: ")
            raise DatabaseUnavailable(f"{label} is unreachable: {detail}") from None
        if destination.refused:
            raise TargetRefused(refusal(label, host, destination.refused[0]))
        return destination.pinned

    # -- calls ---------------------------------------------------------------------------------
    def call(
        self,
        secret_id: str,
        snapshot: Snapshot,
        admin: tuple[str, str, int],
        step: Callable[[DynamicProvider], T],
    ) -> T:
        """Run ``step`` against the database at its checked address (``address``); failures
        become DatabaseUnavailable (503) naming the dynamic secret, with the driver's first
        line (never a password), or TargetRefused when the address is not allowed."""
        user, password, version = admin
        key = (
            snapshot.engine,
            snapshot.host,
            snapshot.port,
            snapshot.database,
            snapshot.admin_secret_id,
            version,
        )
        with self._lock:
            gate = self._gates.setdefault(key, threading.BoundedSemaphore(PER_TARGET))
        if not gate.acquire(timeout=CONNECT_TIMEOUT_S * 2):
            raise DatabaseUnavailable(
                f"database for dynamic secret {secret_id} is busy: too many calls waiting"
            )
        try:
            pinned = self.address(f"database for dynamic secret {secret_id}", snapshot.host, snapshot.port)
            target = Target(
                snapshot.host,
                snapshot.port,
                snapshot.database,
                user,
                password,
                connect_timeout=CONNECT_TIMEOUT_S,
                address=str(pinned),
            )
            return step(self.factory(snapshot.engine, target))
        except ProviderError as e:
            raise DatabaseUnavailable(
                f"database for dynamic secret {secret_id} is unreachable or refused: {e.message}"
            ) from None
        except SikkerError:
            raise
        except Exception as e:  # a driver error a provider did not wrap: never let it carry text
            raise DatabaseUnavailable(
                f"database for dynamic secret {secret_id} failed: {type(e).__name__}"
            ) from None
        finally:
            gate.release()


# -- sealed lease parts ---------------------------------------------------------------------------
def snapshot_of(definition: Definition, username: str) -> Snapshot:
    return Snapshot(
        engine=definition.engine,
        host=definition.host,
        port=definition.port,
        database=definition.database,
        admin_secret_id=definition.admin_secret_id,
        grant_role=definition.grant_role,
        username=username,
        revocation_statements=definition.revocation_statements,
    )


def _binding(project: Project, secret_id: str, lease_id: str, part: str) -> Binding:
    return Binding(project.vault_id, project.id, secret_id, 0, slot=f"lease|{lease_id}|{part}")


def seal_part(
    deps: Deps, conn: Connection, project: Project, secret_id: str, lease_id: str, part: str, data: bytes
) -> Sealed:
    key = project_key(deps, conn, project, project.key_version)
    return envelope.seal_value(key, project.key_version, _binding(project, secret_id, lease_id, part), data)


def open_part(
    deps: Deps, conn: Connection, project: Project, secret_id: str, lease_id: str, part: str, sealed: Sealed
) -> bytes:
    key = project_key(deps, conn, project, sealed.key_version)
    return envelope.open_value(key, _binding(project, secret_id, lease_id, part), sealed)


def encode_snapshot(snapshot: Snapshot) -> bytes:
    return orjson.dumps(
        {
            "engine": snapshot.engine,
            "host": snapshot.host,
            "port": snapshot.port,
            "database": snapshot.database,
            "adminSecretId": snapshot.admin_secret_id,
            "grantRole": snapshot.grant_role,
            "username": snapshot.username,
            "revocationStatements": list(snapshot.revocation_statements),
        }
    )


def decode_snapshot(data: bytes) -> Snapshot:
    d = orjson.loads(data)
    return Snapshot(
        engine=d["engine"],
        host=d["host"],
        port=d["port"],
        database=d["database"],
        admin_secret_id=d["adminSecretId"],
        grant_role=d["grantRole"],
        username=d["username"],
        revocation_statements=tuple(d["revocationStatements"]),
    )


def statement_parts(statements: tuple[str, ...]) -> list[list[tuple[str, str]]]:
    return [dynamic.split_statement(s) for s in statements]

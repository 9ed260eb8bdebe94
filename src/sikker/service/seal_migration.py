"""``sikker operator migrate-seal``: wrap the same root key under another seal, offline.

The root key does not change (nothing else is re-encrypted): only how it is unwrapped. From
Shamir shares (or an HSM, or its recovery shares, or a key file) to Shamir shares, an HSM
(with new recovery shares) or a key file. The new wrapping is checked to unwrap before it is
written; the seal epoch is bumped (running nodes seal themselves) and the change is recorded
in the ``system`` audit chain.
"""

from __future__ import annotations

from dataclasses import dataclass

from sikker.core.audit import SYSTEM_CHAIN, Action, Actor
from sikker.core.model import SealConfig
from sikker.crypto import seal, shamir
from sikker.crypto.seal import AutoUnseal
from sikker.errors import Conflict, InvalidCiphertext, InvalidInput
from sikker.service.seal import split_root
from sikker.storage import audit as audit_store
from sikker.storage import system
from sikker.storage.database import Database


@dataclass(frozen=True, slots=True)
class Migrated:
    previous: str
    kind: str
    shares: list[str]  # new unseal shares (shamir) or recovery shares (pkcs11); none for a key file
    threshold: int


def current_seal(db: Database) -> SealConfig:
    with db.read() as conn:
        config = system.get_seal_config(conn)
    if config is None:
        raise Conflict("the store is not initialised: there is no seal to migrate")
    return config


def unlock_with_shares(config: SealConfig, shares: list[str]) -> bytes:
    """The root key from unseal shares (or an HSM seal's recovery shares)."""
    try:
        key = shamir.combine([shamir.decode_share(s.strip()) for s in shares])
        return seal.unwrap_root(key, seal.shares_part(config.kind, config.wrapped_root_key))
    except (shamir.ShareError, InvalidCiphertext) as e:
        raise InvalidInput("the shares do not unseal this store (a wrong or missing share)") from e


def unlock_with_provider(config: SealConfig, provider: AutoUnseal) -> bytes:
    if provider.kind != config.kind:
        raise InvalidInput(f"the store's seal is {config.kind}, not {provider.kind}")
    try:
        return provider.unwrap(seal.provider_part(config.kind, config.wrapped_root_key))
    except InvalidCiphertext as e:
        raise InvalidInput(f"{provider.location} does not unwrap this store's root key") from e


def migrate(
    db: Database,
    config: SealConfig,
    root_key: bytes,
    target: AutoUnseal | None,
    shares: int | None,
    threshold: int | None,
    actor: Actor,
    now_ms: int,
) -> Migrated:
    """Wrap ``root_key`` under ``target`` (None: Shamir shares) and store it in place of ``config``."""
    kind = target.kind if target else "shamir"
    if kind == config.kind:
        raise InvalidInput(f"the store's seal is already {kind}")
    encoded: list[str] = []
    if target is not None and not target.recovery_shares:
        if shares is not None or threshold is not None:
            raise InvalidInput(f"a {kind} seal has no shares: leave out --shares and --threshold")
        wrapped, shares, threshold = target.wrap(root_key), 0, 0
        check = target.unwrap(wrapped)
    else:
        shares, threshold, encoded, by_shares = split_root(root_key, shares, threshold)
        wrapped = by_shares if target is None else seal.pack_recovery(target.wrap(root_key), by_shares)
        check = root_key if target is None else target.unwrap(seal.provider_part(kind, wrapped))
    if check != root_key:
        raise InvalidInput(f"the new {kind} seal does not give the root key back; nothing was changed")
    with db.write() as conn:
        system.replace_seal_config(conn, SealConfig(kind, shares, threshold, wrapped))
        target_ = {"from": config.kind, "to": kind, "shares": str(shares), "threshold": str(threshold)}
        audit_store.append(conn, SYSTEM_CHAIN, now_ms, actor, Action.OPERATOR_SEAL_MIGRATE, target_)
    return Migrated(config.kind, kind, encoded, threshold)

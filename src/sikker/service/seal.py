"""Initialise, unseal and seal the server.

While sealed, the keyring holds no root key and every use case that needs a
key raises ``Sealed``. Unseal progress lives in memory only: a restart starts
the share count over, as in Vault.

Submitting shares needs no credential (the shares are the credential), so no one
share can be trusted on its own: a well-formed forgery passes the share checksum.
The rules (docs/operator/seal-and-keys.md):

* an index the server never issued (above ``shares``) is refused on its own;
* the same share twice is refused and changes nothing;
* a different share under an index already entered means one of the two is forged:
  both are dropped with all progress (neither replaces the other, neither blocks);
* shares that do not reconstruct the key at the threshold: all progress is dropped.

Every call is audited and counted per source address; resetting the progress
needs the root token.
"""

from __future__ import annotations

import hmac
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from sikker.core import permissions
from sikker.core.audit import SYSTEM_CHAIN, Action, Actor
from sikker.core.model import Principal, SealConfig
from sikker.core.throttle import Throttle
from sikker.crypto import envelope, seal, shamir
from sikker.crypto.seal import AutoUnseal
from sikker.errors import (
    Conflict,
    InvalidCiphertext,
    InvalidInput,
    RateLimited,
    Sealed,
    ShareRejected,
    Unauthenticated,
    Unavailable,
)
from sikker.service.base import Deps
from sikker.service.tokens import TokenService
from sikker.storage import audit as audit_store
from sikker.storage import notifier, system

log = logging.getLogger(__name__)

# Unseal calls (shares and resets) per source address per minute: an operator entering
# five shares with a few typos stays far below; a script hammering the endpoint does not.
UNSEAL_CALLS_PER_MINUTE = 20


@dataclass(frozen=True, slots=True)
class SealStatus:
    initialized: bool
    sealed: bool
    kind: str
    threshold: int
    shares: int
    progress: int
    error: str = ""  # why auto-unseal failed (e.g. the HSM refused the PIN); never a key


@dataclass(frozen=True, slots=True)
class InitResult:
    shares: list[str]
    root_token: str
    key_location: str | None = None  # auto-unseal: where the unseal key is kept (never the key)


NOT_INITIALISED = "server is not initialised (so sealed): run 'sikker operator init'"
# What unseals a server depends on its seal: shares typed in, or the key file read at start-up.
SEALED_BY_KIND = {
    "shamir": "server is sealed: unseal it with 'sikker operator unseal'",
    "keyfile": "server is sealed; it unseals itself from its seal key file when it starts: "
    "restart the server (it has no unseal shares)",
    "pkcs11": "server is sealed; it unseals itself through its HSM when it starts: restart it, or "
    "enter recovery shares with 'sikker operator unseal'",
}


class SealService:
    def __init__(self, deps: Deps, tokens: TokenService, auto: AutoUnseal | None = None) -> None:
        self.deps = deps
        self.tokens = tokens
        self.auto = auto
        self._lock = threading.Lock()
        self._pending: list[bytes] = []
        self._throttle = Throttle(UNSEAL_CALLS_PER_MINUTE, 60_000)
        # Called after every unseal / seal (e.g. to load or forget the audit signing key).
        self.on_unseal: list[Callable[[], None]] = []
        self.on_seal: list[Callable[[], None]] = []
        self._epoch = 0
        self._kind: str | None = None  # the seal kind, once initialised
        self._auto_error = ""

    def _loaded(self, root_key: bytes) -> None:
        with self.deps.db.read() as conn:
            self._epoch = system.seal_epoch(conn)
        self._auto_error = ""
        self.deps.keyring.load(root_key)
        for hook in self.on_unseal:
            hook()

    def follow_cluster(self) -> bool:
        """Seal this node if any node sealed since this one was unsealed. Returns True if it sealed."""
        if self.deps.keyring.sealed:
            return False
        with self.deps.db.read() as conn:
            epoch = system.seal_epoch(conn)
        if epoch == self._epoch:
            return False
        log.warning("another node sealed the cluster; sealing this node")
        self._seal_locally()
        return True

    def _seal_locally(self) -> None:
        self.deps.keyring.clear()
        for hook in self.on_seal:
            hook()
        with self._lock:
            self._pending = []

    def _config(self) -> SealConfig | None:
        with self.deps.db.read() as conn:
            config = system.get_seal_config(conn)
        if config is not None:
            self._kind = config.kind
        return config

    def sealed_error(self) -> Sealed:
        """The 503 a sealed server answers, saying what unseals it (shares, or a restart)."""
        kind = self._kind
        if kind is None:
            config = self._config()
            if config is None:
                return Sealed(NOT_INITIALISED)
            kind = config.kind
        message = SEALED_BY_KIND.get(kind, SEALED_BY_KIND["shamir"])
        return Sealed(f"{message} (auto-unseal failed: {self._auto_error})" if self._auto_error else message)

    def status(self) -> SealStatus:
        config = self._config()
        if config is None:
            return SealStatus(False, True, self.auto.kind if self.auto else "shamir", 0, 0, 0)
        return SealStatus(
            True,
            self.deps.keyring.sealed,
            config.kind,
            config.threshold,
            config.shares,
            len(self._pending),
            self._auto_error if self.deps.keyring.sealed else "",
        )

    def init(
        self, shares: int | None, threshold: int | None, actor: Actor, root_token: str | None = None
    ) -> InitResult:
        """Create the root key; return the unseal shares (none with auto-unseal) and a root token.

        ``shares``/``threshold`` default to 5 and 3; with auto-unseal there are no shares, so
        giving either is refused rather than silently ignored."""
        root_key = envelope.new_key()
        if self.auto is not None and not self.auto.recovery_shares:
            if shares is not None or threshold is not None:
                raise InvalidInput(
                    "this server unseals itself from its seal key file, so it has no unseal shares: "
                    "initialise it without --shares and --threshold"
                )
            encoded: list[str] = []
            wrapped, shares, threshold = self.auto.wrap(root_key), 0, 0
        else:  # unseal shares, or an HSM's recovery shares
            shares, threshold, encoded, by_shares = split_root(root_key, shares, threshold)
            wrapped = (
                by_shares if self.auto is None else seal.pack_recovery(self.auto.wrap(root_key), by_shares)
            )
        kind = self.auto.kind if self.auto else "shamir"
        config = SealConfig(kind, shares, threshold, wrapped)
        with self._lock, self.deps.db.write() as conn:
            if system.get_seal_config(conn) is not None:
                raise Conflict("server is already initialised")
            now = self.deps.clock()
            system.save_seal_config(conn, config, now)
            token = self.tokens.create_root(conn, actor, root_token)
            audit_store.append(
                conn,
                SYSTEM_CHAIN,
                now,
                actor,
                Action.OPERATOR_INIT,
                {"seal": kind, "shares": str(shares), "threshold": str(threshold)},
            )
        self._kind = kind
        if self.auto is not None:
            self._loaded(root_key)
            return InitResult(encoded, token, self.auto.location)
        return InitResult(encoded, token)

    def admit(self, actor: Actor) -> None:
        """Count one unseal call (share or reset) from the actor's address; RateLimited when
        its budget is spent. Checked before anything else, authentication included."""
        with self._lock:
            admitted = self._throttle.admit(actor.source_ip, self.deps.clock())
        if not admitted:
            raise RateLimited(
                f"too many unseal calls from this address (at most {UNSEAL_CALLS_PER_MINUTE} a minute);"
                " wait a minute"
            )

    def submit_share(self, text: str, actor: Actor) -> SealStatus:
        """Add one share; when the threshold is met, try to unseal. Every call is audited."""
        config = self._config()
        if config is None:
            raise Conflict("server is not initialised: run 'sikker operator init'")
        if config.kind not in SHARE_KINDS:
            raise Conflict(f"this server has no unseal shares ({config.kind} seal). {_NOT_BY_SHARES}")
        if not self.deps.keyring.sealed:
            return self.status()
        try:
            raw = shamir.decode_share(text)
        except shamir.ShareError as e:
            self._audit_unseal(actor, "denied", "malformed share")
            raise ShareRejected(str(e)) from e
        index = {"share": str(raw[0])}
        if raw[0] > config.shares:
            self._audit_unseal(actor, "denied", "share index never issued", index)
            raise ShareRejected(f"not a share of this server (it issued shares 1 to {config.shares})")
        with self._lock:
            entered = next((p for p in self._pending if p[0] == raw[0]), None)
            if entered is None:
                self._pending.append(raw)
                pending = list(self._pending)
                if len(pending) >= config.threshold:
                    self._pending = []
            elif not hmac.compare_digest(entered, raw):
                self._pending = []  # one of the two is not genuine and nothing tells which
        if entered is not None and hmac.compare_digest(entered, raw):
            self._audit_unseal(actor, "denied", "share already entered", index)
            raise ShareRejected("this share was already entered")
        if entered is not None:
            self._audit_unseal(actor, "denied", "conflicting shares for one index: progress discarded", index)
            raise ShareRejected(_CONFLICT.format(index=raw[0]))
        progress = len(pending)
        if progress < config.threshold:
            self._audit_unseal(actor, "accepted", "", index | {"progress": f"{progress}/{config.threshold}"})
            return self.status()
        try:
            unseal_key = shamir.combine(pending)
            root_key = seal.unwrap_root(unseal_key, seal.shares_part(config.kind, config.wrapped_root_key))
        except (shamir.ShareError, InvalidCiphertext) as e:
            self._audit_unseal(
                actor, "denied", "shares do not reconstruct the unseal key: progress discarded", index
            )
            raise ShareRejected(
                "the shares do not reconstruct the unseal key (a wrong, forged or corrupted share); "
                "progress was discarded: start again"
            ) from e
        self._loaded(root_key)
        self._audit_unseal(actor, "ok", "", index)
        return self.status()

    def reset_progress(self, principal: Principal | None, actor: Actor) -> SealStatus:
        """Forget the shares entered so far: root token only, audited either way."""
        problem = (
            Unauthenticated("resetting unseal progress needs the root token")
            if principal is None
            else permissions.decide(principal, permissions.SEAL_MANAGE, None)
        )
        if problem is not None:
            self._audit(Action.OPERATOR_UNSEAL_RESET, actor, {}, "denied", "root token required")
            raise problem
        with self._lock:
            discarded, self._pending = len(self._pending), []
        self._audit(Action.OPERATOR_UNSEAL_RESET, actor, {"discarded": str(discarded)}, "ok", "")
        return self.status()

    def auto_unseal(self) -> bool:
        """Unseal from the auto-unseal provider, if the server is set up for one."""
        config = self._config()
        if config is None or self.auto is None or config.kind != self.auto.kind:
            return False
        try:
            root_key = self.auto.unwrap(seal.provider_part(config.kind, config.wrapped_root_key))
        except (Unavailable, InvalidCiphertext) as e:
            if not self.auto.recovery_shares:
                raise
            why = (
                e.message
                if isinstance(e, Unavailable)
                else f"{self.auto.location} does not unwrap the root key"
            )
            self._auto_error = why
            log.error(
                "auto-unseal failed, the server stays sealed: %s (enter recovery shares to unseal)", why
            )
            self._audit_unseal(Actor("system", self.auto.kind), "error", f"auto-unseal: {why}")
            return False
        self._auto_error = ""
        self._loaded(root_key)
        self._audit_unseal(Actor("system", self.auto.kind), "ok", "auto-unseal")
        return True

    def seal(self, actor: Actor) -> None:
        """Seal this node and, through the seal epoch, every other node of the cluster."""
        self._seal_locally()
        with self.deps.db.write() as conn:
            system.bump_seal_epoch(conn)
            notifier.notify(conn, "seal")
            audit_store.append(conn, SYSTEM_CHAIN, self.deps.clock(), actor, Action.OPERATOR_SEAL, {})

    def _audit_unseal(
        self, actor: Actor, result: str, reason: str, target: dict[str, str] | None = None
    ) -> None:
        self._audit(Action.OPERATOR_UNSEAL, actor, target or {}, result, reason)

    def _audit(self, action: Action, actor: Actor, target: dict[str, str], result: str, reason: str) -> None:
        with self.deps.db.write() as conn:
            audit_store.append(conn, SYSTEM_CHAIN, self.deps.clock(), actor, action, target, result, reason)


_NOT_BY_SHARES = "It unseals itself from its seal key file when it starts: restart the server"

# Seal kinds whose root key shares (unseal or recovery shares) unwrap.
SHARE_KINDS = frozenset({"shamir", "pkcs11"})


def split_root(
    root_key: bytes, shares: int | None, threshold: int | None
) -> tuple[int, int, list[str], bytes]:
    """A new share key split into shares (default 5, threshold 3), and the root key wrapped by it:
    (shares, threshold, the encoded shares, the wrapped root key)."""
    shares = 5 if shares is None else shares
    threshold = 3 if threshold is None else threshold
    try:
        key = envelope.new_key()
        raw = shamir.split(key, shares, threshold)
    except ValueError as e:
        raise InvalidInput(str(e)) from e
    return shares, threshold, [shamir.encode_share(s) for s in raw], seal.wrap_root(key, root_key)


_CONFLICT = (
    "a different share with index {index} was entered before: one of the two is not genuine. "
    "All progress was discarded (see the audit log for who sent what); enter your shares again"
)

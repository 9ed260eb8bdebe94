"""Reading, exporting and proving the audit log; signed checkpoints.

Records are written by every use case through ``storage.audit.append``, in the
use case's own transaction. This service adds what makes them verifiable: an
Ed25519 audit key (its private half wrapped by the root key, so it exists in
clear only in memory while unsealed), periodic signed checkpoints over an RFC
6962 Merkle tree per chain, inclusion and consistency proofs, and exports that
``sikker audit verify`` checks offline.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

from sikker.core import audit, audit_verify, ids, merkle
from sikker.core import permissions as perm
from sikker.core.model import Filters, Principal
from sikker.crypto.signature import Signer
from sikker.errors import InvalidInput, NotFound
from sikker.service.base import Deps, require
from sikker.storage import audit as audit_store
from sikker.storage.audit import Checkpoint, StoredEntry

MAX_PAGE = 1000


def _aad(key_id: str) -> bytes:
    return f"sikker/v1/audit-key|{key_id}".encode()


def record_dict(stored: StoredEntry) -> dict[str, Any]:
    return {
        "type": "record",
        **asdict(stored.entry),
        "prevHash": stored.prev_hash.hex(),
        "hash": stored.hash.hex(),
    }


def checkpoint_dict(cp: Checkpoint) -> dict[str, Any]:
    return {
        "type": "checkpoint",
        "chain": cp.chain,
        "treeSize": cp.tree_size,
        "rootHash": cp.root_hash.hex(),
        "timeMs": cp.time_ms,
        "signature": base64.b64encode(cp.signature).decode(),
    }


class AuditService:
    def __init__(self, deps: Deps, every_records: int = 1000, every_ms: int = 60_000) -> None:
        self.deps = deps
        self.every_records = every_records
        self.every_ms = every_ms
        self._signer: tuple[str, Signer] | None = None

    # -- the audit key ------------------------------------------------------------------
    def load_key(self) -> None:
        """Unwrap (or create, once) the checkpoint signing key. Needs the server unsealed."""
        with self.deps.db.write() as conn:
            found = audit_store.get_audit_key(conn)
            if found is None:
                key_id = ids.new_id("audit_key")
                private, seed = Signer.generate()
                wrapped = self.deps.keyring.wrap(_aad(key_id), seed)
                audit_store.insert_audit_key(conn, key_id, private.public_key, wrapped, self.deps.clock())
            else:
                key_id, _, wrapped = found
                private = Signer(self.deps.keyring.unwrap(_aad(key_id), wrapped))
        self._signer = (key_id, private)

    def forget_key(self) -> None:
        self._signer = None

    def public_key(self) -> tuple[str, bytes]:
        with self.deps.db.read() as conn:
            found = audit_store.get_audit_key(conn)
        if found is None:
            raise NotFound("no audit key yet: the server has not been unsealed")
        return found[0], found[1]

    # -- checkpoints ----------------------------------------------------------------------
    def checkpoint_due(self) -> int:
        """Checkpoint every chain with ``every_records`` new records, or any new record
        and no checkpoint for ``every_ms``. Returns how many checkpoints were made."""
        if self._signer is None:
            return 0
        now = self.deps.clock()
        with self.deps.db.read() as conn:
            heads = audit_store.heads(conn)
            sizes = audit_store.frontier_sizes(conn)
            last = audit_store.last_checkpoint_ms(conn)
        made = 0
        for chain, head in heads.items():
            pending = head - sizes.get(chain, 0)
            if pending >= self.every_records or (pending > 0 and now - last.get(chain, 0) >= self.every_ms):
                made += self.checkpoint(chain) is not None
        return made

    def checkpoint(self, chain: str) -> Checkpoint | None:
        if self._signer is None:
            return None
        key_id, private = self._signer
        with self.deps.db.write() as conn:
            frontier = audit_store.get_frontier(conn, chain, for_update=True)
            head = audit_store.head_seq(conn, chain)
            if head <= frontier.size:
                return None
            for leaf in audit_store.leaf_hashes(conn, chain, frontier.size, head):
                frontier.append(leaf)
            root, now = frontier.root(), self.deps.clock()
            signature = private.sign(audit_verify.checkpoint_message(chain, head, root, now))
            cp = Checkpoint(chain, head, root, now, key_id, signature)
            audit_store.insert_checkpoint(conn, cp)
            audit_store.save_frontier(conn, chain, frontier)
        return cp

    # -- reading --------------------------------------------------------------------------
    def check_chain(self, principal: Principal, chain: str) -> None:
        """Reading, exporting and verifying a chain: ``audit:read`` at the vault; the system
        chain is root only (``audit:system``)."""
        if chain == audit.SYSTEM_CHAIN:
            require(principal, perm.AUDIT_SYSTEM, None)
            return
        ids.check("vault", chain)
        require(principal, perm.AUDIT_READ, chain, missing=f"vault {chain} not found")

    def query(
        self, principal: Principal, chain: str, filters: Filters, before_seq: int | None, limit: int
    ) -> list[StoredEntry]:
        self.check_chain(principal, chain)
        with self.deps.db.read() as conn:
            return audit_store.query(conn, chain, filters, before_seq, min(max(limit, 1), MAX_PAGE))

    def export(
        self, principal: Principal, chain: str, since_ms: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """Header, records (oldest first) and checkpoints, as dicts for JSON lines."""
        self.check_chain(principal, chain)
        _, public = self.public_key()
        yield {
            "type": "header",
            "format": "sikker-audit-v1",
            "chain": chain,
            "publicKey": base64.b64encode(public).decode(),
        }
        with self.deps.db.read() as conn:
            after = audit_store.first_seq_since(conn, chain, since_ms) - 1 if since_ms else 0
            if since_ms and after < 0:
                after = audit_store.head_seq(conn, chain)
            checkpoints = audit_store.checkpoints(conn, chain)
        while True:
            with self.deps.db.read() as conn:
                batch = audit_store.list_entries(conn, chain, after, 1000)
            for stored in batch:
                yield record_dict(stored)
            if len(batch) < 1000:
                break
            after = batch[-1].entry.seq
        for cp in checkpoints:
            yield checkpoint_dict(cp)

    def checkpoints(self, principal: Principal, chain: str) -> list[Checkpoint]:
        self.check_chain(principal, chain)
        with self.deps.db.read() as conn:
            return audit_store.checkpoints(conn, chain)

    def _leaves(self, chain: str, size: int) -> list[bytes]:
        with self.deps.db.read() as conn:
            if size < 1 or size > audit_store.head_seq(conn, chain):
                raise InvalidInput("tree size must be between 1 and the number of records")
            return list(audit_store.leaf_hashes(conn, chain, 0, size))

    def inclusion(self, principal: Principal, chain: str, seq: int, tree_size: int) -> dict[str, Any]:
        self.check_chain(principal, chain)
        if not 1 <= seq <= tree_size:
            raise InvalidInput("seq must be between 1 and treeSize")
        leaves = self._leaves(chain, tree_size)
        proof = merkle.inclusion_proof(leaves, seq - 1, tree_size)
        return {
            "seq": seq,
            "leafIndex": seq - 1,
            "treeSize": tree_size,
            "leafHash": leaves[seq - 1].hex(),
            "rootHash": merkle.root(leaves).hex(),
            "auditPath": [p.hex() for p in proof],
        }

    def consistency(self, principal: Principal, chain: str, first: int, second: int) -> dict[str, Any]:
        self.check_chain(principal, chain)
        if not 1 <= first <= second:
            raise InvalidInput("need 1 <= first <= second")
        leaves = self._leaves(chain, second)
        proof = merkle.consistency_proof(leaves, first, second)
        return {
            "first": first,
            "second": second,
            "firstRoot": merkle.root(leaves[:first]).hex(),
            "secondRoot": merkle.root(leaves).hex(),
            "proof": [p.hex() for p in proof],
        }

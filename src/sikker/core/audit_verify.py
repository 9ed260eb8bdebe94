"""Offline verification of an audit export (pure logic: decoded JSON lines in, a Report out).

An export is JSON lines; this module sees them already decoded::

    {"type":"header","format":"sikker-audit-v1","chain":C,"publicKey":base64(raw Ed25519 key)}
    {"type":"record", <the fields of audit.Entry>, "prevHash":hex, "hash":hex}
    {"type":"checkpoint","chain":C,"treeSize":n,"rootHash":hex,"timeMs":t,"signature":base64,
     "consistencyProof":[hex, ...]}   # optional: from the previous checkpoint line

Records must be contiguous from the first exported seq; each hash must recompute
(``audit.chain_hash``) and link to the previous record's. A checkpoint is an
Ed25519 signature over ``checkpoint_message``; its root is the RFC 6962 root over
``merkle.leaf_hash(audit.canonical(entry))`` of records 1..treeSize, so it can
be checked only when the export starts at seq 1 (otherwise it goes in ``notes``).
An export that starts later looks like one made with ``--since``: pass
``from_start=True`` when a full export is expected, or deleting the first records
goes unnoticed. Checkpoints may come anywhere after the header (the server puts
them last).

The hash chain pins down a careless edit; only signed checkpoints catch an
attacker who re-chains everything after the edit, and only a checkpoint saved
from an earlier run catches a log cut back to an older checkpoint. Records after
the newest checkpoint have the hash chain alone (``notes`` says so).

``first_bad_seq`` is the smallest seq the problems found point at: a record whose
hash or seq is wrong; for a broken link, the record before it (unless a checkpoint
vouches for that one); for a checkpoint whose root does not match, the first
record after the newest checkpoint that did; for truncation, the first missing one.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import copy
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any, TypeGuard

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sikker.core import audit, merkle

FORMAT = "sikker-audit-v1"
GENESIS_HEX = audit.GENESIS.hex()
_HEX = re.compile(r"[0-9a-f]{64}")
_ENTRY_INT = ("seq", "time_ms")
_ENTRY_STR = tuple(f.name for f in fields(audit.Entry) if f.name not in (*_ENTRY_INT, "target"))
_RECORD_KEYS = frozenset({"type", "target", "prevHash", "hash", *_ENTRY_STR, *_ENTRY_INT})
_HEADER_KEYS = frozenset({"type", "format", "chain", "publicKey"})
_CHECKPOINT_KEYS = frozenset({"type", "chain", "treeSize", "rootHash", "timeMs", "signature"})


def checkpoint_message(chain: str, tree_size: int, root_hash: bytes, time_ms: int) -> bytes:
    """The bytes a checkpoint signature covers."""
    return b"sikker-audit-checkpoint-v1\n" + f"{chain}\n{tree_size}\n{root_hash.hex()}\n{time_ms}\n".encode()


def sign_checkpoint(
    private_key: Ed25519PrivateKey, chain: str, tree_size: int, root_hash: bytes, time_ms: int
) -> dict[str, Any]:
    """A signed checkpoint line, as the export carries it."""
    signature = private_key.sign(checkpoint_message(chain, tree_size, root_hash, time_ms))
    encoded = base64.b64encode(signature).decode()
    return {
        "type": "checkpoint",
        "chain": chain,
        "treeSize": tree_size,
        "rootHash": root_hash.hex(),
        "timeMs": time_ms,
        "signature": encoded,
    }


@dataclass(frozen=True, slots=True)
class Report:
    """The verdict; ``notes`` says what could not be checked when ``ok``."""

    ok: bool
    records: int  # record lines read
    checkpoints: int  # checkpoint lines read
    first_bad_seq: int | None
    problem: str | None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Checkpoint:
    size: int
    root: bytes
    proof: tuple[bytes, ...] | None


class _Malformed(ValueError):
    """A line that is not in the export format (reported with its line number)."""


class _Rejected(ValueError):
    """A well-formed line that fails verification (a forged or contradictory checkpoint)."""


def _canonical(line: Mapping[str, Any]) -> bytes:
    """``audit.canonical(Entry(...))`` of a record line whose fields were checked. Built
    straight from the line: dataclasses.asdict costs 14 us a record; tests pin the equality."""
    entry = {k: line[k] for k in (*_ENTRY_STR, *_ENTRY_INT, "target")}
    try:
        return orjson.dumps(entry, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError as e:  # e.g. a lone surrogate from a lenient JSON decoder
        raise _Malformed("a field cannot be encoded canonically") from e


def _check_record(line: Mapping[str, Any]) -> None:
    if extra := set(line) - _RECORD_KEYS:
        raise _Malformed(f"unexpected field {sorted(extra)[0]!r} (not covered by the hash)")
    for key in _ENTRY_STR:
        if not isinstance(line.get(key), str):
            raise _Malformed(f"field {key!r} must be a string")
    for key in _ENTRY_INT:
        if type(line.get(key)) is not int or not 0 <= line[key] < 2**63:
            raise _Malformed(f"field {key!r} must be a non-negative 64-bit integer")
    if line["seq"] < 1:
        raise _Malformed("seq must be at least 1")
    target = line.get("target")
    if not isinstance(target, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in target.items()
    ):
        raise _Malformed("field 'target' must be an object of strings")
    for key in ("prevHash", "hash"):
        if not _is_hash(line.get(key)):
            raise _Malformed(f"field {key!r} must be 64 lower-case hex digits")


def _parse_checkpoint(line: Mapping[str, Any], chain: str) -> tuple[_Checkpoint, int, bytes]:
    if extra := set(line) - _CHECKPOINT_KEYS - {"consistencyProof"}:
        raise _Malformed(f"unexpected field {sorted(extra)[0]!r}")
    if line.get("chain") != chain:
        raise _Malformed(f"chain {line.get('chain')!r} is not this export's chain {chain!r}")
    size, time_ms, root = line.get("treeSize"), line.get("timeMs"), line.get("rootHash")
    if type(size) is not int or type(time_ms) is not int or not 0 <= size < 2**63 or not 0 <= time_ms < 2**63:
        raise _Malformed("treeSize and timeMs must be non-negative integers")
    if not _is_hash(root):
        raise _Malformed("rootHash must be 64 lower-case hex digits")
    proof = line.get("consistencyProof")
    if proof is not None and (not isinstance(proof, list) or not all(map(_is_hash, proof))):
        raise _Malformed("consistencyProof must be a list of 64-digit hex hashes")
    cp = _Checkpoint(size, bytes.fromhex(root), None if proof is None else tuple(map(bytes.fromhex, proof)))
    return cp, time_ms, _b64(line.get("signature"), "signature")


def _is_hash(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and _HEX.fullmatch(value) is not None


def _b64(value: object, name: str) -> bytes:
    try:
        if isinstance(value, str):
            return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        pass
    raise _Malformed(f"{name} must be base64")


class Verifier:
    """Streaming verifier: ``feed`` each decoded line in order, then ``finish``.

    Records are checked up to the first problem and only counted after it;
    checkpoints are always checked, against the records verified so far. So once
    ``failed``, only non-record lines can still change the verdict. ``fork``
    copies the state, so variants of one export can share the work on a common prefix.
    """

    def __init__(
        self,
        trusted_public_key: bytes | None = None,
        trusted_checkpoint: Mapping[str, Any] | None = None,
        from_start: bool = False,
    ) -> None:
        self._trusted_key = trusted_public_key
        self._from_start = from_start
        self._good_signatures: set[tuple[bytes, bytes, bytes]] = set()  # shared by forks
        self._trusted_line = trusted_checkpoint
        self._trusted: _Checkpoint | None = None
        self._lines = self._records = self._checkpoints = self._unchecked = 0
        self._chain = ""
        self._key: Ed25519PublicKey | None = None
        self._raw_key = b""
        self._first: int | None = None
        self._last: int | None = None
        self._prev_hash = ""
        self._tree = merkle.Tree()  # leaves of records 1.. (only when the export starts at 1)
        self._pending: list[tuple[int, bytes, str]] = []  # roots waiting for their records
        self._verified = [0]  # sizes whose root matched the records
        self._previous: _Checkpoint | None = None
        self._claimed = (0, "checkpoint")  # the largest treeSize a checkpoint vouches for
        self._fatal: str | None = None
        self._break: tuple[int, str] | None = None  # the first bad record (0: unknown seq)
        self._mismatches: list[tuple[int, str]] = []  # checkpoint roots that did not match

    @property
    def failed(self) -> bool:
        return bool(self._fatal or self._break or self._mismatches)

    def fork(self) -> Verifier:
        twin = copy.copy(self)
        twin._tree = self._tree.copy()
        twin._pending, twin._verified = self._pending.copy(), self._verified.copy()
        twin._mismatches = self._mismatches.copy()
        return twin

    def feed(self, line: Mapping[str, Any]) -> None:
        self._lines += 1
        if self._fatal:
            return
        kind = line.get("type") if isinstance(line, Mapping) else None
        try:
            if self._key is None:
                if kind != "header":
                    raise _Malformed("expected the export header")
                self._header(line)
            elif kind == "record":
                self._records += 1
                if not self.failed:
                    self._record(line)
            elif kind == "checkpoint":
                self._checkpoints += 1
                self._checkpoint(*_parse_checkpoint(line, self._chain), "checkpoint")
            else:
                raise _Malformed(f"unexpected line type {kind!r}")
        except _Malformed as e:
            self._fatal = f"line {self._lines}: {e}"
        except _Rejected as e:
            self._fatal = str(e)

    def finish(self) -> Report:
        """The verdict on everything fed so far."""
        seq, problem = self._verdict()
        notes = self._notes() if problem is None else ()
        return Report(problem is None, self._records, self._checkpoints, seq, problem, notes)

    def _header(self, line: Mapping[str, Any]) -> None:
        if set(line) != _HEADER_KEYS or line["format"] != FORMAT or not isinstance(line["chain"], str):
            raise _Malformed(f"not a {FORMAT} header")
        raw_key = _b64(line["publicKey"], "publicKey")
        if self._trusted_key is not None and raw_key != self._trusted_key:
            raise _Rejected("the export's public key is not the trusted key")
        try:
            self._key = Ed25519PublicKey.from_public_bytes(raw_key)
        except ValueError as e:
            raise _Malformed("publicKey is not an Ed25519 public key") from e
        self._chain, self._raw_key = line["chain"], raw_key
        if self._trusted_line is not None:
            try:
                trusted = _parse_checkpoint(self._trusted_line, self._chain)
            except _Malformed as e:
                raise _Rejected(f"trusted checkpoint: {e}") from e
            self._checkpoint(*trusted, "trusted checkpoint")
            self._trusted = trusted[0]

    def _record(self, line: Mapping[str, Any]) -> None:
        expected = (1 if self._from_start else None) if self._last is None else self._last + 1
        try:
            _check_record(line)
            canonical = _canonical(line)
        except _Malformed as e:
            self._break = (expected or 0, f"record {expected or '?'} (line {self._lines}): {e}")
            return
        self._break = self._link(line, expected, canonical)
        if self._break:
            return
        self._first = line["seq"] if self._first is None else self._first
        self._last, self._prev_hash = line["seq"], line["hash"]
        if self._first == 1:
            self._tree.append(merkle.leaf_hash(canonical))
            while self._pending and self._pending[0][0] == self._tree.size:
                self._check_root(*self._pending.pop(0))

    def _link(
        self, line: Mapping[str, Any], expected: int | None, canonical: bytes
    ) -> tuple[int, str] | None:
        """What is wrong with this record's place in the chain: (first bad seq, problem)."""
        seq, prev = line["seq"], line["prevHash"]
        if line["chain"] != self._chain:
            return expected or seq, f"record {seq}: belongs to chain {line['chain']!r}"
        if expected is not None and seq != expected:
            why = "deleted or reordered" if seq > expected else "inserted, duplicated or reordered"
            return min(seq, expected), f"record {expected}: expected seq {expected}, found {seq} ({why})"
        # audit.chain_hash, from the canonical bytes already made for the Merkle leaf
        if hashlib.sha256(bytes.fromhex(prev) + canonical).hexdigest() != line["hash"]:
            return seq, f"record {seq}: hash does not match its contents (modified)"
        if self._last is None and seq == 1 and prev != GENESIS_HEX:
            return 1, "record 1: prevHash is not the genesis hash (32 zero bytes)"
        if self._last is not None and prev != self._prev_hash:  # seq - 1 rehashed, or seq relinked
            return seq - 1, f"record {seq}: prevHash does not link to record {seq - 1}"
        return None

    def _checkpoint(self, cp: _Checkpoint, time_ms: int, signature: bytes, label: str) -> None:
        assert self._key is not None
        message = checkpoint_message(self._chain, cp.size, cp.root, time_ms)
        if (self._raw_key, message, signature) not in self._good_signatures:
            try:
                self._key.verify(signature, message)
            except InvalidSignature as e:
                raise _Rejected(f"{label} at size {cp.size}: bad signature") from e
            self._good_signatures.add((self._raw_key, message, signature))
        if self._trusted is not None and cp.size == self._trusted.size and cp.root != self._trusted.root:
            raise _Rejected(
                f"checkpoints at {cp.size} and {cp.size} are not consistent (the trusted one differs)"
            )
        if label == "checkpoint":
            self._follow(cp)
        if cp.size > self._claimed[0]:
            self._claimed = (cp.size, label)
        self._check_root(cp.size, cp.root, label)

    def _follow(self, cp: _Checkpoint) -> None:
        """A checkpoint line against the one before it."""
        prev, self._previous = self._previous, cp
        if prev is None:
            return
        if cp.size < prev.size:
            raise _Rejected(
                f"checkpoint at size {cp.size} follows one at size {prev.size} (sizes must increase)"
            )
        consistent = cp.root == prev.root if cp.size == prev.size else True
        if cp.proof is not None:
            consistent = merkle.verify_consistency(prev.size, cp.size, prev.root, cp.root, cp.proof)
        if not consistent:
            raise _Rejected(f"checkpoints at {prev.size} and {cp.size} are not consistent")

    def _check_root(self, size: int, root: bytes, label: str) -> None:
        if self._first is not None and self._first != 1 and size > 0:
            self._unchecked += 1
        elif size > self._tree.size:
            bisect.insort(self._pending, (size, root, label))
        elif self._tree.root(size) == root:
            bisect.insort(self._verified, size)
        else:
            start = self._verified[bisect.bisect_left(self._verified, size) - 1] + 1
            problem = f"{label} at size {size}: root does not match records 1..{size}"
            self._mismatches.append((start, f"{problem} (altered within records {start}..{size})"))

    def _verdict(self) -> tuple[int | None, str | None]:
        if self._fatal or self._key is None:
            return None, self._fatal or "the export is empty (no header)"
        found = list(self._mismatches)
        if self._break:
            seq, problem = self._break
            # A checkpoint that verified over the record named proves it intact: name the next.
            found.append((max(seq, self._verified[-1] + 1) if seq else 0, problem))
        if found:
            seq, problem = min(found, key=lambda f: f[0])
            return seq or None, problem
        last, (size, label) = self._last or 0, self._claimed
        if size > last:
            return last + 1, f"export ends at record {last} but a {label} covers {size} (truncated)"
        return None, None

    def _notes(self) -> tuple[str, ...]:
        notes = []
        if self._first is not None and self._first > 1:
            unchecked = self._unchecked + len(self._pending)
            notes.append(
                f"the export starts at record {self._first}: its link to record {self._first - 1} and "
                f"{unchecked} checkpoint root(s) cannot be checked (signatures were)"
            )
        newest = max(self._claimed[0], self._verified[-1])
        if self._last is not None and self._last > newest:
            notes.append(
                f"records {max(newest + 1, self._first or 1)}..{self._last} are newer than the newest "
                "checkpoint: only the hash chain protects them"
            )
        return tuple(notes)


def fingerprint(raw_public_key: bytes) -> str:
    """How people compare audit keys: ``sha256:`` and the hex SHA-256 of the raw 32-byte key."""
    return "sha256:" + hashlib.sha256(raw_public_key).hexdigest()


def verify(
    lines: Iterable[Mapping[str, Any]],
    trusted_public_key: bytes | None = None,
    trusted_checkpoint: Mapping[str, Any] | None = None,
    *,
    from_start: bool = False,
) -> Report:
    """Verify a decoded export. Pin the key and pass a checkpoint saved from an earlier run to
    catch a re-signed, truncated or rewritten log. ``from_start``: the export must begin at
    record 1, so deleting its first records cannot pass it off as an export made with --since."""
    verifier = Verifier(trusted_public_key, trusted_checkpoint, from_start)
    for line in lines:
        verifier.feed(line)
    return verifier.finish()

"""RFC 6962 (Certificate Transparency) Merkle tree hashing and proofs (pure logic).

Hashes are SHA-256 with domain separation so a leaf can never pass for a node::

    leaf_hash(d)    = SHA-256(0x00 || d)
    node_hash(l, r) = SHA-256(0x01 || l || r)
    MTH({})         = SHA-256("")
    MTH(D[n])       = node_hash(MTH(D[0:k]), MTH(D[k:n]))   k = largest power of two < n

Functions here take *leaf hashes*, not leaf data. Indices are 0-based (audit
record ``seq`` s is leaf ``s - 1``). Proof generation follows RFC 6962 section
2.1.1 / 2.1.2; verification follows RFC 9162 sections 2.1.3.2 and 2.1.4.2.

An RFC 6962 root is the right-to-left fold of the perfect subtrees that the
binary expansion of ``n`` cuts the leaves into (8 + 4 + 1 for 13 leaves);
``Frontier`` keeps only those, ``Tree`` keeps every level so it can give the
root at any earlier size.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
_SIZE_BYTES = 8


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _fold(parts: Sequence[bytes]) -> bytes:
    """Root from perfect-subtree roots, largest (leftmost) first."""
    if not parts:
        return EMPTY_ROOT
    acc = parts[-1]
    for part in reversed(parts[:-1]):
        acc = node_hash(part, acc)
    return acc


class Frontier:
    """Incremental root of an append-only sequence, in O(log n) space.

    Holds the roots of the perfect subtrees left of the next leaf, one per set
    bit of ``size``; ``to_bytes`` is the 8-byte big-endian size followed by them.
    """

    __slots__ = ("_nodes", "_size")

    def __init__(self) -> None:
        self._nodes: list[bytes] = []
        self._size = 0

    @property
    def size(self) -> int:
        return self._size

    def append(self, leaf: bytes) -> None:
        node, n = leaf, self._size
        while n & 1:  # each trailing 1 bit is a subtree of the same height: merge
            node = node_hash(self._nodes.pop(), node)
            n >>= 1
        self._nodes.append(node)
        self._size += 1

    def root(self) -> bytes:
        return _fold(self._nodes)

    def to_bytes(self) -> bytes:
        return self._size.to_bytes(_SIZE_BYTES, "big") + b"".join(self._nodes)

    @classmethod
    def from_bytes(cls, data: bytes) -> Frontier:
        if len(data) < _SIZE_BYTES:
            raise ValueError("frontier too short")
        size = int.from_bytes(data[:_SIZE_BYTES], "big")
        body = data[_SIZE_BYTES:]
        if len(body) != HASH_SIZE * size.bit_count():
            raise ValueError("frontier length does not match its size")
        frontier = cls()
        frontier._size = size
        frontier._nodes = [body[i : i + HASH_SIZE] for i in range(0, len(body), HASH_SIZE)]
        return frontier


class Tree:
    """Every perfect-subtree root of an append-only sequence: the root at any
    earlier size in O(log n). Twice the leaves' memory."""

    __slots__ = ("_levels",)

    def __init__(self) -> None:
        self._levels: list[list[bytes]] = [[]]

    @property
    def size(self) -> int:
        return len(self._levels[0])

    def append(self, leaf: bytes) -> None:
        self._levels[0].append(leaf)
        height = 0
        while len(self._levels[height]) % 2 == 0:
            row = self._levels[height]
            if height + 1 == len(self._levels):
                self._levels.append([])
            self._levels[height + 1].append(node_hash(row[-2], row[-1]))
            height += 1

    def root(self, size: int | None = None) -> bytes:
        n = self.size if size is None else size
        if not 0 <= n <= self.size:
            raise ValueError(f"no root for size {n}: the tree has {self.size} leaves")
        parts, start = [], 0
        for height in reversed(range(n.bit_length())):
            if n >> height & 1:
                parts.append(self._levels[height][start >> height])
                start += 1 << height
        return _fold(parts)

    def copy(self) -> Tree:
        twin = Tree()
        twin._levels = [row.copy() for row in self._levels]
        return twin


def _mth(leaves: Sequence[bytes], lo: int, hi: int) -> bytes:
    frontier = Frontier()
    for i in range(lo, hi):
        frontier.append(leaves[i])
    return frontier.root()


def root(leaves: Sequence[bytes]) -> bytes:
    """RFC 6962 Merkle tree head over ``leaves`` (leaf hashes)."""
    return _mth(leaves, 0, len(leaves))


def inclusion_proof(leaves: Sequence[bytes], index: int, size: int) -> list[bytes]:
    """Audit path for leaf ``index`` in the tree of the first ``size`` leaves, leaf-side first."""
    if not 0 <= index < size <= len(leaves):
        raise ValueError(f"need 0 <= index < size <= {len(leaves)}; got index {index}, size {size}")
    proof: list[bytes] = []
    lo, hi, m = 0, size, index
    while hi - lo > 1:
        k = _split(hi - lo)
        if m < k:
            proof.append(_mth(leaves, lo + k, hi))
            hi = lo + k
        else:
            proof.append(_mth(leaves, lo, lo + k))
            lo, m = lo + k, m - k
    proof.reverse()  # collected root-side first
    return proof


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """True when ``proof`` shows leaf hash ``leaf`` at ``index`` in the tree of ``size`` with ``root``."""
    if not 0 <= index < size or not _hashes(leaf, root, *proof):
        return False
    fn, sn, acc = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            acc = node_hash(p, acc)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            acc = node_hash(acc, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and acc == root


def consistency_proof(leaves: Sequence[bytes], old_size: int, new_size: int) -> list[bytes]:
    """Proof that the first ``old_size`` leaves are a prefix of the first ``new_size``.

    Empty when ``old_size`` is 0 or equals ``new_size`` (nothing to prove)."""
    if not 0 <= old_size <= new_size <= len(leaves):
        raise ValueError(f"need 0 <= old <= new <= {len(leaves)}; got {old_size}, {new_size}")
    if old_size in (0, new_size):
        return []
    proof: list[bytes] = []
    lo, hi, m, whole = 0, new_size, old_size, True
    while hi - lo != m:
        k = _split(hi - lo)
        if m <= k:
            proof.append(_mth(leaves, lo + k, hi))
            hi = lo + k
        else:
            proof.append(_mth(leaves, lo, lo + k))
            lo, m, whole = lo + k, m - k, False
    if not whole:  # the old tree's root is not a node of the new tree: send the subtree
        proof.append(_mth(leaves, lo, hi))
    proof.reverse()
    return proof


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """True when ``proof`` shows the tree (old_size, old_root) is a prefix of (new_size, new_root).

    The empty tree is a prefix of every tree, but only under its own root ``EMPTY_ROOT``."""
    if not 0 <= old_size <= new_size or not _hashes(old_root, new_root, *proof):
        return False
    if old_size == 0:
        return not proof and old_root == EMPTY_ROOT
    if old_size == new_size:
        return not proof and old_root == new_root
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is a node of the new tree
        path.insert(0, old_root)
    if not path:
        return False
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == old_root and sr == new_root


def _hashes(*values: bytes) -> bool:
    return all(isinstance(v, bytes) and len(v) == HASH_SIZE for v in values)

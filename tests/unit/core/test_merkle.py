from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pytest

from sikker.core import merkle

# The Certificate Transparency test tree (RFC 6962 reference implementations'
# vectors, also in transparency-dev/merkle testonly/constants.go): 8 leaf inputs,
# the root after each one, and published audit paths / consistency proofs.
CT_INPUTS = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
H = {  # named node hashes of the 8-leaf tree
    "l1": "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "l4": "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    "l6": "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
    "n23": "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
    "n45": "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
    "n67": "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    "n4567": "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
}
# (0-based leaf index, tree size, audit path); published with 1-based leaf numbers.
CT_INCLUSION = [
    (0, 1, []),
    (0, 8, [H["l1"], H["n23"], H["n4567"]]),
    (5, 8, [H["l4"], H["n67"], CT_ROOTS[3]]),
    (2, 3, [CT_ROOTS[1]]),
    (1, 5, [CT_ROOTS[0], H["n23"], H["l4"]]),
]
CT_CONSISTENCY = [
    (1, 1, []),
    (1, 8, [H["l1"], H["n23"], H["n4567"]]),
    (6, 8, [H["n45"], H["n67"], CT_ROOTS[3]]),
    (2, 5, [H["n23"], H["l4"]]),
    (6, 7, [H["n45"], H["l6"], CT_ROOTS[3]]),
]
CT_LEAVES = [merkle.leaf_hash(d) for d in CT_INPUTS]
LEAVES = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(300)]
MAX = 64


def hexes(hashes: Sequence[bytes]) -> list[str]:
    return [h.hex() for h in hashes]


# Straight transcriptions of the RFC 6962 definitions, to check the iterative code against.
def ref_mth(d: Sequence[bytes]) -> bytes:
    if not d:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return d[0]
    k = 1 << ((len(d) - 1).bit_length() - 1)
    return merkle.node_hash(ref_mth(d[:k]), ref_mth(d[k:]))


def ref_path(m: int, d: Sequence[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = 1 << ((len(d) - 1).bit_length() - 1)
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def ref_subproof(m: int, d: Sequence[bytes], whole: bool) -> list[bytes]:
    if m == len(d):
        return [] if whole else [ref_mth(d)]
    k = 1 << ((len(d) - 1).bit_length() - 1)
    if m <= k:
        return [*ref_subproof(m, d[:k], whole), ref_mth(d[k:])]
    return [*ref_subproof(m - k, d[k:], False), ref_mth(d[:k])]


def flipped(proof: list[bytes], i: int) -> list[bytes]:
    return [bytes([p[0] ^ 0x10]) + p[1:] if j == i else p for j, p in enumerate(proof)]


def test_hashes_are_domain_separated_sha256() -> None:
    assert merkle.EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert merkle.leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    assert merkle.node_hash(b"a", b"b") == hashlib.sha256(b"\x01ab").digest()
    assert merkle.root([]) == merkle.EMPTY_ROOT == merkle.Frontier().root() == merkle.Tree().root()


@pytest.mark.parametrize("size", range(1, 9))
def test_roots_match_the_certificate_transparency_vectors(size: int) -> None:
    frontier, tree = merkle.Frontier(), merkle.Tree()
    for leaf in CT_LEAVES[:size]:
        frontier.append(leaf)
        tree.append(leaf)
    assert merkle.root(CT_LEAVES[:size]).hex() == CT_ROOTS[size - 1]
    assert frontier.root().hex() == tree.root().hex() == CT_ROOTS[size - 1]


@pytest.mark.parametrize(("index", "size", "path"), CT_INCLUSION)
def test_published_inclusion_paths_are_generated_and_verified(index: int, size: int, path: list[str]) -> None:
    assert hexes(merkle.inclusion_proof(CT_LEAVES, index, size)) == path
    proof = [bytes.fromhex(p) for p in path]
    root = bytes.fromhex(CT_ROOTS[size - 1])
    assert merkle.verify_inclusion(CT_LEAVES[index], index, size, proof, root)


@pytest.mark.parametrize(("old", "new", "path"), CT_CONSISTENCY)
def test_published_consistency_proofs_are_generated_and_verified(old: int, new: int, path: list[str]) -> None:
    assert hexes(merkle.consistency_proof(CT_LEAVES, old, new)) == path
    proof = [bytes.fromhex(p) for p in path]
    roots = [bytes.fromhex(r) for r in CT_ROOTS]
    assert merkle.verify_consistency(old, new, roots[old - 1], roots[new - 1], proof)


def test_incremental_roots_equal_the_full_root_for_every_size_up_to_300() -> None:
    frontier, tree = merkle.Frontier(), merkle.Tree()
    for n in range(301):
        expected = ref_mth(LEAVES[:n])
        assert merkle.root(LEAVES[:n]) == expected, n
        assert frontier.size == tree.size == n
        assert frontier.root() == tree.root() == expected, n
        restored = merkle.Frontier.from_bytes(frontier.to_bytes())
        assert restored.size == n and restored.root() == expected
        assert len(frontier.to_bytes()) == 8 + 32 * n.bit_count()
        if n < 300:
            frontier = restored  # keep appending to the persisted copy
            frontier.append(LEAVES[n])
            tree.append(LEAVES[n])
    assert [tree.root(n) for n in range(301)] == [ref_mth(LEAVES[:n]) for n in range(301)]
    twin = tree.copy()
    twin.append(LEAVES[0])
    assert tree.size == 300 and twin.size == 301


@pytest.mark.parametrize(
    "data", [b"", b"\x00" * 7, (3).to_bytes(8, "big") + bytes(32), (2).to_bytes(8, "big")]
)
def test_a_frontier_with_the_wrong_length_is_rejected(data: bytes) -> None:
    with pytest.raises(ValueError):
        merkle.Frontier.from_bytes(data)


def test_tree_refuses_a_size_it_does_not_have() -> None:
    tree = merkle.Tree()
    tree.append(LEAVES[0])
    with pytest.raises(ValueError):
        tree.root(2)


def test_every_inclusion_proof_up_to_64_leaves_verifies_and_nothing_else_does() -> None:
    roots = [merkle.root(LEAVES[:n]) for n in range(MAX + 2)]
    checked = rejected = 0
    for size in range(1, MAX + 1):
        root = roots[size]
        for index in range(size):
            proof = merkle.inclusion_proof(LEAVES, index, size)
            assert proof == ref_path(index, LEAVES[:size])
            assert merkle.verify_inclusion(LEAVES[index], index, size, proof, root)
            checked += 1
            leaf = LEAVES[index]
            wrong = [(LEAVES[j], index, size, proof, root) for j in range(MAX + 1) if j != index]
            wrong += [(leaf, i, size, proof, root) for i in range(-1, size + 2) if i != index]
            wrong += [(leaf, index, s, proof, roots[s]) for s in (size - 1, size + 1) if s > index]
            wrong += [(leaf, index, s, proof, root) for s in (size // 2, 2 * size)]
            wrong += [(leaf, index, size, proof, r) for r in (roots[size - 1], roots[size + 1], bytes(32))]
            wrong += [(leaf, index, size, flipped(proof, i), root) for i in range(len(proof))]
            tampered = [proof[:-1], [*proof, root], [root, *proof], [*proof, b""], [b"", *proof]]
            wrong += [(leaf, index, size, p, root) for p in tampered if p != proof]
            for args in wrong:
                assert not merkle.verify_inclusion(*args), (index, size, args[1:3])
            rejected += len(wrong)
    assert checked == MAX * (MAX + 1) // 2
    print(f"inclusion: {checked} proofs verified, {rejected} wrong ones rejected")


def test_every_consistency_proof_up_to_64_leaves_verifies_and_tampered_ones_fail() -> None:
    roots = [merkle.root(LEAVES[:n]) for n in range(2 * MAX + 1)]
    checked = rejected = 0
    for new in range(1, MAX + 1):
        for old in range(1, new + 1):
            proof = merkle.consistency_proof(LEAVES, old, new)
            assert proof == (ref_subproof(old, LEAVES[:new], True) if old < new else [])
            assert merkle.verify_consistency(old, new, roots[old], roots[new], proof)
            checked += 1
            wrong = [(old, new, roots[old], roots[new], flipped(proof, i)) for i in range(len(proof))]
            if proof:
                tampered = [
                    proof[:-1],
                    [*proof, roots[old]],
                    [roots[new], *proof],
                    [*proof, b""],
                    [proof[0], *proof],
                ]
                wrong += [(old, new, roots[old], roots[new], p) for p in tampered]
                wrong += [
                    (new, old, roots[new], roots[old], proof),
                    (old, new, roots[new], roots[old], proof),
                ]
            wrong += [(old, new, r, roots[new], proof) for r in (roots[old - 1], roots[old + 1], bytes(32))]
            wrong += [(old, new, roots[old], r, proof) for r in (roots[new - 1], roots[new + 1], bytes(32))]
            wrong += [(o, new, roots[o], roots[new], proof) for o in (old - 1, old + 1) if 0 < o <= new]
            wrong += [(old, n, roots[old], roots[n], proof) for n in (new - 1, new + 1) if n >= old]
            wrong += [
                (old // 2, new, roots[old], roots[new], proof),
                (old, 2 * new, roots[old], roots[new], proof),
            ]
            wrong = [w for w in wrong if w[2] != w[3] or w[0] != w[1]]  # equal trees are consistent
            for args in wrong:
                assert not merkle.verify_consistency(*args), (old, new, args[:2])
            rejected += len(wrong)
    assert checked == MAX * (MAX + 1) // 2
    print(f"consistency: {checked} proofs verified, {rejected} wrong ones rejected")


def test_the_empty_tree_is_a_prefix_of_every_tree_under_its_own_root_only() -> None:
    assert merkle.consistency_proof(LEAVES, 0, 5) == []
    assert merkle.verify_consistency(0, 5, merkle.EMPTY_ROOT, merkle.root(LEAVES[:5]), [])
    assert not merkle.verify_consistency(0, 5, LEAVES[0], merkle.root(LEAVES[:5]), [])
    assert not merkle.verify_consistency(0, 5, merkle.EMPTY_ROOT, merkle.root(LEAVES[:5]), [LEAVES[0]])
    assert not merkle.verify_consistency(0, 0, merkle.EMPTY_ROOT, merkle.EMPTY_ROOT, [LEAVES[0]])


@pytest.mark.parametrize(("index", "size"), [(-1, 3), (3, 3), (0, 0), (0, 301)])
def test_inclusion_proof_rejects_impossible_positions(index: int, size: int) -> None:
    with pytest.raises(ValueError):
        merkle.inclusion_proof(LEAVES, index, size)


@pytest.mark.parametrize(("old", "new"), [(-1, 3), (4, 3), (1, 301)])
def test_consistency_proof_rejects_impossible_sizes(old: int, new: int) -> None:
    with pytest.raises(ValueError):
        merkle.consistency_proof(LEAVES, old, new)

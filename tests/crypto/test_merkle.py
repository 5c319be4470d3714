"""RFC 9162 §2.1 Merkle hashing and proofs (docs/protocol.md §4).

The tree under test is checked against a naive transcription of the RFC's recursive definitions
written here, then every proof at every (index, size) / (old, new) pair is verified, and every
single-point tampering of a proof, a root, an index or a size is refused.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto import merkle
from crypto.errors import LocalProtocolError
from crypto.merkle import MerkleError, MerkleTree
from tests.crypto.vectors import ids, load, unhex


def _h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def naive_mth(d: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1 literally."""
    n = len(d)
    if n == 0:
        return _h(b"")
    if n == 1:
        return _h(b"\x00" + d[0])
    k = 1
    while k * 2 < n:
        k *= 2
    return _h(b"\x01" + naive_mth(d[:k]) + naive_mth(d[k:]))


def naive_path(m: int, d: list[bytes]) -> list[bytes]:
    """RFC 9162 §2.1.3.1 literally."""
    n = len(d)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*naive_path(m, d[:k]), naive_mth(d[k:])]
    return [*naive_path(m - k, d[k:]), naive_mth(d[:k])]


def naive_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    """RFC 9162 §2.1.4.1 literally."""
    n = len(d)
    if m == n:
        return [] if b else [naive_mth(d)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*naive_subproof(m, d[:k], b), naive_mth(d[k:])]
    return [*naive_subproof(m - k, d[k:], False), naive_mth(d[:k])]


ENTRIES = [f"entry-{i}".encode() for i in range(33)]


def test_empty_tree_root_is_sha256_of_nothing() -> None:
    assert merkle.root([]) == hashlib.sha256(b"").digest()
    assert MerkleTree().root() == merkle.EMPTY_ROOT


def test_leaf_and_node_hashes_are_domain_separated() -> None:
    assert merkle.leaf_hash(b"x") == _h(b"\x00x")
    assert merkle.node_hash(b"a" * 32, b"b" * 32) == _h(b"\x01" + b"a" * 32 + b"b" * 32)
    # A two-leaf tree's root is not the leaf hash of the concatenated leaf hashes.
    assert merkle.root([b"a", b"b"]) != merkle.leaf_hash(merkle.leaf_hash(b"a") + b"")


def test_roots_and_proofs_match_the_rfc_definitions_at_every_size() -> None:
    tree = MerkleTree(ENTRIES)
    for n in range(len(ENTRIES) + 1):
        assert tree.root(n) == naive_mth(ENTRIES[:n]) == merkle.root(ENTRIES[:n])
        for m in range(n):
            assert tree.inclusion_proof(m, n) == naive_path(m, ENTRIES[:n])
        for m in range(1, n):
            assert tree.consistency_proof(m, n) == naive_subproof(m, ENTRIES[:n], True)


def test_every_inclusion_and_consistency_pair_verifies() -> None:
    tree = MerkleTree(ENTRIES)
    for n in range(1, len(ENTRIES) + 1):
        r = tree.root(n)
        for m in range(n):
            merkle.verify_inclusion(ENTRIES[m], m, n, tree.inclusion_proof(m, n), r)
    for n in range(len(ENTRIES) + 1):
        for m in range(n + 1):
            merkle.verify_consistency(
                m, n, tree.root(m), tree.root(n), tree.consistency_proof(m, n)
            )


def test_incremental_tree_equals_one_built_from_leaf_hashes() -> None:
    tree = MerkleTree()
    for i, e in enumerate(ENTRIES):
        assert tree.append(e) == i
    again = MerkleTree.from_leaf_hashes(merkle.leaf_hash(e) for e in ENTRIES)
    assert again.root() == tree.root() and len(again) == len(ENTRIES)
    assert tree.leaf_hash(5) == merkle.leaf_hash(ENTRIES[5])
    assert repr(tree) == "MerkleTree(size=33)"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=8), min_size=1, max_size=70), st.data())
def test_property_random_trees_prove_every_pair(entries: list[bytes], data: st.DataObject) -> None:
    tree = MerkleTree(entries)
    n = data.draw(st.integers(1, len(entries)), label="size")
    m = data.draw(st.integers(0, n - 1), label="index")
    merkle.verify_inclusion(entries[m], m, n, tree.inclusion_proof(m, n), tree.root(n))
    old = data.draw(st.integers(0, n), label="old")
    proof = tree.consistency_proof(old, n)
    merkle.verify_consistency(old, n, tree.root(old), tree.root(n), proof)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.binary(max_size=8), min_size=2, max_size=70, unique=True), st.data())
def test_property_any_tampering_of_an_inclusion_proof_fails(
    entries: list[bytes], data: st.DataObject
) -> None:
    tree = MerkleTree(entries)
    n = data.draw(st.integers(2, len(entries)), label="size")
    m = data.draw(st.integers(0, n - 1), label="index")
    proof = tree.inclusion_proof(m, n)
    r = tree.root(n)
    # The size is not tampered with here: it is bound by the signed tree head, not by the path
    # (index 0 has the same path in trees of 3 and 4 leaves, as RFC 9162 allows).
    kind = data.draw(st.sampled_from(["flip", "drop", "extra", "index", "root", "entry"]))
    args: tuple[bytes, int, int, list[bytes], bytes] = (entries[m], m, n, list(proof), r)
    if kind == "flip":
        i = data.draw(st.integers(0, len(proof) - 1))
        bit = data.draw(st.integers(0, 255))
        bad = bytearray(proof[i])
        bad[bit // 8] ^= 1 << (bit % 8)
        proof2 = list(proof)
        proof2[i] = bytes(bad)
        args = (entries[m], m, n, proof2, r)
    elif kind == "drop":
        args = (entries[m], m, n, proof[:-1], r)
    elif kind == "extra":
        args = (entries[m], m, n, [*proof, _h(b"x")], r)
    elif kind == "index":
        other = data.draw(st.integers(0, n - 1).filter(lambda i: i != m))
        args = (entries[m], other, n, proof, r)
    elif kind == "root":
        args = (entries[m], m, n, proof, _h(r))
    else:
        other = data.draw(st.sampled_from([e for e in entries if e != entries[m]]))
        args = (other, m, n, proof, r)
    with pytest.raises(MerkleError) as err:
        merkle.verify_inclusion(*args)
    assert err.value.code == "koppi.bad_inclusion_proof"


@settings(max_examples=80, deadline=None)
@given(st.lists(st.binary(max_size=8), min_size=2, max_size=70, unique=True), st.data())
def test_property_any_tampering_of_a_consistency_proof_fails(
    entries: list[bytes], data: st.DataObject
) -> None:
    tree = MerkleTree(entries)
    n = data.draw(st.integers(2, len(entries)), label="new")
    m = data.draw(st.integers(1, n - 1), label="old")
    proof = tree.consistency_proof(m, n)
    old_root, new_root = tree.root(m), tree.root(n)
    # Sizes come from signed tree heads; the path alone need not pin them (as for inclusion).
    kind = data.draw(st.sampled_from(["flip", "drop", "extra", "oldroot", "newroot"]))
    args = (m, n, old_root, new_root, list(proof))
    if kind == "flip":
        i = data.draw(st.integers(0, len(proof) - 1))
        bad = bytearray(proof[i])
        bad[data.draw(st.integers(0, 31))] ^= 0x01
        proof2 = list(proof)
        proof2[i] = bytes(bad)
        args = (m, n, old_root, new_root, proof2)
    elif kind == "drop":
        args = (m, n, old_root, new_root, proof[:-1])
    elif kind == "extra":
        args = (m, n, old_root, new_root, [*proof, _h(b"x")])
    elif kind == "oldroot":
        args = (m, n, _h(old_root), new_root, proof)
    else:
        args = (m, n, old_root, _h(new_root), proof)
    with pytest.raises(MerkleError) as err:
        merkle.verify_consistency(*args)
    assert err.value.code == "koppi.bad_consistency_proof"


def test_forked_log_is_not_consistent() -> None:
    forked = list(ENTRIES[:10])
    forked[3] = b"rewritten"
    old = MerkleTree(forked)
    new = MerkleTree(ENTRIES[:20])
    with pytest.raises(MerkleError):
        merkle.verify_consistency(10, 20, old.root(), new.root(), new.consistency_proof(10))


@pytest.mark.parametrize(
    ("old", "new", "proof_len", "same_root"),
    [
        (0, 5, 1, False),  # size 0 needs an empty proof
        (5, 5, 1, True),  # equal sizes need an empty proof
        (5, 5, 0, False),  # ... and equal roots
        (6, 5, 0, True),  # shrinking is never consistent
        (3, 5, 0, False),  # 0 < old < new needs a proof (RFC step 1)
    ],
)
def test_consistency_edge_cases_are_refused(
    old: int, new: int, proof_len: int, same_root: bool
) -> None:
    tree = MerkleTree(ENTRIES)
    old_root = tree.root(min(old, new))
    new_root = old_root if same_root else _h(old_root)
    with pytest.raises(MerkleError):
        merkle.verify_consistency(old, new, old_root, new_root, [_h(b"p")] * proof_len)


def test_size_zero_is_consistent_only_with_the_empty_root() -> None:
    tree = MerkleTree(ENTRIES)
    merkle.verify_consistency(0, 7, merkle.EMPTY_ROOT, tree.root(7), [])
    with pytest.raises(MerkleError):
        merkle.verify_consistency(0, 7, tree.root(1), tree.root(7), [])


def test_inclusion_index_outside_the_tree_or_malformed_hashes_are_refused() -> None:
    tree = MerkleTree(ENTRIES[:4])
    r = tree.root()
    with pytest.raises(MerkleError):
        merkle.verify_inclusion(ENTRIES[0], 4, 4, tree.inclusion_proof(0), r)
    with pytest.raises(MerkleError):
        merkle.verify_inclusion(ENTRIES[0], -1, 4, tree.inclusion_proof(0), r)
    with pytest.raises(MerkleError):
        merkle.verify_inclusion(ENTRIES[0], 0, 0, [], merkle.EMPTY_ROOT)
    with pytest.raises(MerkleError):
        merkle.verify_inclusion(ENTRIES[0], 0, 4, [p[:31] for p in tree.inclusion_proof(0)], r)
    with pytest.raises(MerkleError):
        merkle.verify_inclusion(ENTRIES[0], 0, 4, tree.inclusion_proof(0), r[:31])


def test_single_leaf_tree_proves_with_an_empty_path() -> None:
    merkle.verify_inclusion(b"only", 0, 1, [], merkle.leaf_hash(b"only"))
    with pytest.raises(MerkleError):
        merkle.verify_inclusion(b"only", 0, 1, [], merkle.leaf_hash(b"other"))


def test_proof_requests_outside_the_tree_are_caller_errors() -> None:
    tree = MerkleTree(ENTRIES[:4])
    with pytest.raises(LocalProtocolError):
        tree.inclusion_proof(4)
    with pytest.raises(LocalProtocolError):
        tree.root(5)
    with pytest.raises(LocalProtocolError):
        tree.consistency_proof(5, 4)
    with pytest.raises(LocalProtocolError):
        tree.append_leaf_hash(b"short")


# --- known answers and vectors --------------------------------------------------------------------

# transparency-dev/merkle testonly/constants.go: LeafInputs and RootHashes (RFC 6962 reference).
CT_LEAVES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def test_roots_equal_the_rfc6962_reference_roots() -> None:
    tree = MerkleTree(CT_LEAVES)
    assert [tree.root(n).hex() for n in range(9)] == CT_ROOTS


MERKLE = load("koppi-merkle.json")


def test_merkle_vector_file_starts_with_the_reference_leaves() -> None:
    entries = [unhex(e) for e in MERKLE.doc["entries"]]
    assert entries[:8] == CT_LEAVES
    roots = {c["size"]: c["root"] for c in MERKLE.cases if c["kind"] == "root"}
    assert [roots[n] for n in range(9)] == CT_ROOTS


@pytest.mark.parametrize("case", MERKLE.cases, ids=ids(MERKLE.cases))
def test_merkle_vectors(case: dict[str, Any]) -> None:
    entries = [unhex(e) for e in MERKLE.doc["entries"]]
    err = case.get("expected_error")
    if case["kind"] == "root":
        assert merkle.root(entries[: case["size"]]).hex() == case["root"]
        return
    if case["kind"] == "inclusion":
        call = lambda: merkle.verify_inclusion(  # noqa: E731
            unhex(case["entry"]),
            case["index"],
            case["size"],
            [unhex(p) for p in case["proof"]],
            unhex(case["root"]),
        )
        if err is None:  # positive proofs are also the ones our tree produces
            tree = MerkleTree(entries)
            assert [p.hex() for p in tree.inclusion_proof(case["index"], case["size"])] == case[
                "proof"
            ]
    else:
        call = lambda: merkle.verify_consistency(  # noqa: E731
            case["old_size"],
            case["new_size"],
            unhex(case["old_root"]),
            unhex(case["new_root"]),
            [unhex(p) for p in case["proof"]],
        )
        if err is None:
            tree = MerkleTree(entries)
            proof = tree.consistency_proof(case["old_size"], case["new_size"])
            assert [p.hex() for p in proof] == case["proof"]
    if err is None:
        call()
    else:
        with pytest.raises(MerkleError) as e:
            call()
        assert e.value.code == err

"""Generator of `koppi-merkle.json`: RFC 9162 roots, inclusion and consistency proofs (§4).

The entries are the eight leaf inputs of transparency-dev/merkle `testonly/constants.go` (so the
roots for sizes 0-8 equal the published RFC 6962 reference roots, which the tests check) followed
by five more of our own. Positive cases cover every (index, size) and every (old, new) pair up to
13 leaves; negative cases each tamper with one thing and carry the expected error code.
"""

from __future__ import annotations

from typing import Any

from crypto import merkle
from crypto.merkle import BAD_CONSISTENCY, BAD_INCLUSION, MerkleTree

ENTRIES = [
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
] + [f"koppi-entry-{i}".encode() for i in range(8, 13)]


def _flip(h: bytes, byte: int = 0) -> bytes:
    b = bytearray(h)
    b[byte] ^= 0x01
    return bytes(b)


def _inc(name: str, entry: bytes, index: int, size: int, proof: list[bytes], root: bytes,
         error: str | None = None) -> dict[str, Any]:  # fmt: skip
    case: dict[str, Any] = {
        "name": name,
        "kind": "inclusion",
        "entry": entry.hex(),
        "index": index,
        "size": size,
        "proof": [p.hex() for p in proof],
        "root": root.hex(),
    }
    if error:
        case["expected_error"] = error
    return case


def _con(name: str, old: int, new: int, old_root: bytes, new_root: bytes, proof: list[bytes],
         error: str | None = None) -> dict[str, Any]:  # fmt: skip
    case: dict[str, Any] = {
        "name": name,
        "kind": "consistency",
        "old_size": old,
        "new_size": new,
        "old_root": old_root.hex(),
        "new_root": new_root.hex(),
        "proof": [p.hex() for p in proof],
    }
    if error:
        case["expected_error"] = error
    return case


def merkle_vectors() -> dict[str, Any]:
    tree = MerkleTree(ENTRIES)
    n_all = len(ENTRIES)
    cases: list[dict[str, Any]] = []
    for n in range(n_all + 1):
        cases.append({"name": f"root-{n}", "kind": "root", "size": n, "root": tree.root(n).hex()})
    for n in range(1, n_all + 1):
        for m in range(n):
            proof = tree.inclusion_proof(m, n)
            cases.append(_inc(f"inclusion-{m}-of-{n}", ENTRIES[m], m, n, proof, tree.root(n)))
    for n in range(n_all + 1):
        for m in range(n + 1):
            proof = tree.consistency_proof(m, n)
            cases.append(_con(f"consistency-{m}-to-{n}", m, n, tree.root(m), tree.root(n), proof))

    # Negative inclusion cases: 5 of 11, whose path has 4 hashes.
    m, n = 5, 11
    p, r, e = tree.inclusion_proof(m, n), tree.root(n), ENTRIES[m]
    bad = BAD_INCLUSION
    cases += [
        _inc("inclusion-bad-flipped-path-hash", e, m, n, [p[0], _flip(p[1]), *p[2:]], r, bad),
        _inc("inclusion-bad-wrong-index", e, m + 1, n, p, r, bad),
        _inc("inclusion-bad-index-equals-size", e, n, n, p, r, bad),
        _inc("inclusion-bad-path-too-short", e, m, n, p[:-1], r, bad),
        _inc("inclusion-bad-path-too-long", e, m, n, [*p, p[0]], r, bad),
        _inc("inclusion-bad-wrong-root", e, m, n, p, tree.root(n - 1), bad),
        _inc("inclusion-bad-wrong-entry", ENTRIES[m + 1], m, n, p, r, bad),
        _inc("inclusion-bad-short-hash", e, m, n, [p[0][:31], *p[1:]], r, bad),
        _inc("inclusion-bad-empty-tree", e, 0, 0, [], merkle.EMPTY_ROOT, bad),
    ]
    # Negative consistency cases: 6 to 13 (old size not a power of two) and 4 to 13 (one).
    bad = BAD_CONSISTENCY
    for m, n in ((6, 13), (4, 13)):
        p, o, r = tree.consistency_proof(m, n), tree.root(m), tree.root(n)
        forked = MerkleTree([*ENTRIES[:2], b"rewritten", *ENTRIES[3:m]]).root()
        cases += [
            _con(f"consistency-bad-flipped-hash-{m}-{n}", m, n, o, r, [_flip(p[0]), *p[1:]], bad),
            _con(f"consistency-bad-path-too-short-{m}-{n}", m, n, o, r, p[:-1], bad),
            _con(f"consistency-bad-path-too-long-{m}-{n}", m, n, o, r, [*p, p[-1]], bad),
            _con(f"consistency-bad-forked-old-root-{m}-{n}", m, n, forked, r, p, bad),
            _con(f"consistency-bad-wrong-new-root-{m}-{n}", m, n, o, tree.root(n - 1), p, bad),
            _con(f"consistency-bad-empty-path-{m}-{n}", m, n, o, r, [], bad),
        ]
    o7, r7 = tree.root(7), tree.root(7)
    cases += [
        _con("consistency-bad-shrinking", 8, 7, tree.root(8), r7, [], bad),
        _con("consistency-bad-equal-sizes-other-root", 7, 7, o7, tree.root(6), [], bad),
        _con("consistency-bad-equal-sizes-non-empty-path", 7, 7, o7, r7, [r7], bad),
        _con("consistency-bad-size-zero-not-empty-root", 0, 7, tree.root(1), r7, [], bad),
        _con("consistency-bad-size-zero-non-empty-path", 0, 7, merkle.EMPTY_ROOT, r7, [r7], bad),
    ]
    return {
        "generated_by": "crypto/vectors/gen_merkle.py",
        "description": (
            "RFC 9162 §2.1 Merkle tree hashes and proofs (docs/protocol.md §4). `entries` are the "
            "log entries (the first eight are transparency-dev/merkle testonly LeafInputs, so "
            "roots 0-8 are the RFC 6962 reference roots). kind=root: MTH of the first `size` "
            "entries. kind=inclusion: verify_inclusion(entry, index, size, proof, root). "
            "kind=consistency: verify_consistency(old_size, new_size, old_root, new_root, proof). "
            "Cases with expected_error must be refused with that code."
        ),
        "entries": [e.hex() for e in ENTRIES],
        "cases": cases,
    }


VECTORS = {"koppi-merkle.json": merkle_vectors}

"""Generator of `koppi-treehead.json`: signed and cosigned tree heads and `LogView` rules (§4).

Keys come from a seeded RNG and times are fixed, so the file is reproducible
(`python -m crypto.vectors.generate --check`). Each case says how to run it (`kind`) and, when
negative, the error code the client must raise.
"""

from __future__ import annotations

from typing import Any

from crypto.clock import SeededRng
from crypto.merkle import BAD_CONSISTENCY, BAD_INCLUSION, MerkleTree
from crypto.primitives import SigningKey
from crypto.treehead import (
    MAX_HEAD_AGE_MS,
    QUORUM,
    ROLLBACK,
    STALE,
    UNKNOWN_LOG,
    Cosignature,
    CosignedTreeHead,
    TreeHead,
    cosign,
    key_id,
    sign_tree_head,
)

T0 = 1_790_000_000_000  # ms
ENTRIES = [f"koppi/v1/log-entry-{i}".encode() for i in range(11)]


def _flip(b: bytes, i: int = 0) -> bytes:
    out = bytearray(b)
    out[i] ^= 0x01
    return bytes(out)


def treehead_vectors() -> dict[str, Any]:
    rng = SeededRng("koppi-treehead-vectors")
    log = SigningKey.generate(rng)
    w1, w2, w3 = (SigningKey.generate(rng) for _ in range(3))
    outsider = SigningKey.generate(rng)
    log_id = key_id(log.public)
    tree = MerkleTree(ENTRIES)
    forked = MerkleTree([*ENTRIES[:2], b"rewritten", *ENTRIES[3:]])

    def head(size: int, ts: int, t: MerkleTree = tree, key: SigningKey = log) -> CosignedTreeHead:
        return sign_tree_head(key, TreeHead(size, t.root(size), ts, key_id(key.public)))

    def cos(cth: CosignedTreeHead, *witnesses: SigningKey, dt: int = 2000) -> CosignedTreeHead:
        for i, w in enumerate(witnesses):
            cth = cosign(cth, w, cth.head.timestamp_ms + dt + i)
        return cth

    t5, t8, t11 = T0, T0 + 60_000, T0 + 120_000
    h5 = cos(head(5, t5), w1, w2)
    h8 = cos(head(8, t8), w1, w2)
    h11 = cos(head(11, t11), w1, w2)
    p5_8 = tree.consistency_proof(5, 8)
    p8_11 = tree.consistency_proof(8, 11)
    p5_11 = tree.consistency_proof(5, 11)

    def enc(cth: CosignedTreeHead | None) -> str | None:
        return None if cth is None else cth.encode().hex()

    def upd(name: str, now: int, current: CosignedTreeHead | None, new: CosignedTreeHead,
            proof: list[bytes], error: str | None = None) -> dict[str, Any]:  # fmt: skip
        case: dict[str, Any] = {
            "name": name,
            "kind": "update",
            "now_ms": now,
            "current": enc(current),
            "new": enc(new),
            "proof": [p.hex() for p in proof],
        }
        if error:
            case["expected_error"] = error
        return case

    bad_log_sig = CosignedTreeHead(h8.head, _flip(h8.signature, 5), h8.cosignatures)
    c1 = cos(head(8, t8), w1)
    dup = cosign(cos(head(8, t8), w1), w1, t8 + 9000)
    with_outsider = cos(head(8, t8), w1, outsider)
    bad_cos = h8.cosignatures[1]
    bad_cosig = CosignedTreeHead(
        h8.head,
        h8.signature,
        (
            h8.cosignatures[0],
            Cosignature(bad_cos.witness_id, bad_cos.timestamp_ms, _flip(bad_cos.signature, 3)),
        ),
    )
    three_one_bad = CosignedTreeHead(
        h8.head, h8.signature, (*bad_cosig.cosignatures, *cos(head(8, t8), w3).cosignatures)
    )
    other_log = cos(head(8, t8, key=outsider), w1, w2)
    smaller_newer = cos(head(5, t11), w1, w2)
    h8_older = cos(head(8, t8 - 1000), w1, w2)
    fork8 = cos(head(8, t11, t=forked), w1, w2)
    fork5 = cos(head(5, t5, t=forked), w1, w2)

    fresh = t11 + 1000
    cases: list[dict[str, Any]] = [
        upd("first-head-accepted", t8 + 1000, None, h8, []),
        upd("advance-5-to-8", t8 + 1000, h5, h8, p5_8),
        upd("advance-8-to-11", fresh, h8, h11, p8_11),
        upd("advance-5-to-11", fresh, h5, h11, p5_11),
        upd("same-head-again", t8 + 1000, h8, h8, []),
        upd("head-exactly-max-age-old", t8 + MAX_HEAD_AGE_MS, None, h8, []),
        upd("head-older-than-max-age", t8 + MAX_HEAD_AGE_MS + 1, None, h8, [], STALE),
        upd("clock-behind-is-floored-by-current-head", t11 - 3_600_000, h8, h11, p8_11),
        upd("bad-log-signature", t8 + 1000, None, bad_log_sig, [], "koppi.auth_failed"),
        upd("head-of-another-log", t8 + 1000, None, other_log, [], UNKNOWN_LOG),
        upd("one-cosignature-of-two", t8 + 1000, None, c1, [], QUORUM),
        upd("duplicate-witness-counts-once", t8 + 1000, None, dup, [], QUORUM),
        upd("unknown-witness-does-not-count", t8 + 1000, None, with_outsider, [], QUORUM),
        upd("bad-cosignature-does-not-count", t8 + 1000, None, bad_cosig, [], QUORUM),
        upd("three-cosignatures-one-bad", t8 + 1000, None, three_one_bad, []),
        upd("rollback-to-smaller-tree", fresh, h8, smaller_newer, [], ROLLBACK),
        upd("rollback-to-older-timestamp", t8 + 1000, h8, h8_older, [], ROLLBACK),
        upd("same-size-other-root", fresh, h8, fork8, [], BAD_CONSISTENCY),
        upd(
            "bad-consistency-proof", fresh, h5, h11, [_flip(p5_11[0]), *p5_11[1:]], BAD_CONSISTENCY
        ),
        upd("missing-consistency-proof", fresh, h5, h11, [], BAD_CONSISTENCY),
        upd("forked-history", fresh, fork5, h11, p5_11, BAD_CONSISTENCY),
    ]
    proof3 = tree.inclusion_proof(3, 11)
    cases += [
        {
            "name": "inclusion-in-current-head",
            "kind": "inclusion",
            "now_ms": fresh,
            "current": enc(h11),
            "entry": ENTRIES[3].hex(),
            "index": 3,
            "proof": [p.hex() for p in proof3],
        },
        {
            "name": "inclusion-bad-proof",
            "kind": "inclusion",
            "now_ms": fresh,
            "current": enc(h11),
            "entry": ENTRIES[3].hex(),
            "index": 3,
            "proof": [p.hex() for p in [proof3[0], _flip(proof3[1]), *proof3[2:]]],
            "expected_error": BAD_INCLUSION,
        },
        {
            "name": "inclusion-needs-a-fresh-head",
            "kind": "inclusion",
            "now_ms": t11 + MAX_HEAD_AGE_MS + 1,
            "current": enc(h11),
            "entry": ENTRIES[3].hex(),
            "index": 3,
            "proof": [p.hex() for p in proof3],
            "expected_error": STALE,
        },
        {
            "name": "effective-now-floored-by-head",
            "kind": "effective_now",
            "now_ms": t11 - 3_600_000,
            "current": enc(h11),
            "effective_now_ms": t11,
        },
        {
            "name": "effective-now-is-clock-when-ahead",
            "kind": "effective_now",
            "now_ms": t11 + 5000,
            "current": enc(h11),
            "effective_now_ms": t11 + 5000,
        },
        {
            "name": "decode-trailing-byte",
            "kind": "decode",
            "data": (h8.encode() + b"\x00").hex(),
            "expected_error": "koppi.decode",
        },
        {
            "name": "decode-wrong-label",
            "kind": "decode",
            "data": h8.head.encode().hex(),
            "expected_error": "koppi.decode",
        },
    ]
    return {
        "generated_by": "crypto/vectors/gen_treehead.py",
        "description": (
            "Tree heads (docs/protocol.md §4). `config`: the log key, witness keys and quorum a "
            "client trusts. Heads are CosignedTreeHead encodings. kind=update: a LogView at "
            "now_ms holding `current` (or nothing) is given `new` with consistency `proof`. "
            "kind=inclusion: verify_inclusion(entry, index, proof) against `current` at now_ms. "
            "kind=effective_now: the view's floored clock. kind=decode: decoding must fail."
        ),
        "config": {
            "log_public_key": log.public.hex(),
            "log_id": log_id.hex(),
            "witness_public_keys": [w.public.hex() for w in (w1, w2, w3)],
            "quorum": 2,
            "max_head_age_ms": MAX_HEAD_AGE_MS,
        },
        "cases": cases,
    }


VECTORS = {"koppi-treehead.json": treehead_vectors}

"""Tree heads, cosignatures and the client's LogView (docs/protocol.md §4)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto.clock import SeededRng
from crypto.encoding import DecodeError
from crypto.errors import AuthFailed, KoppiError, LocalProtocolError
from crypto.merkle import MerkleError, MerkleTree
from crypto.primitives import SigningKey
from crypto.treehead import (
    MAX_HEAD_AGE_MS,
    CosignedTreeHead,
    LogConfig,
    LogView,
    TreeHead,
    TreeHeadError,
    cosign,
    key_id,
    sign_tree_head,
)
from tests.crypto.vectors import ids, load, unhex


class MsClock:
    """A clock fixed at a millisecond instant (vectors carry ms times)."""

    def __init__(self, now_ms: int) -> None:
        self.ms = now_ms

    def now(self) -> int:
        return self.ms // 1000

    def now_ms(self) -> int:
        return self.ms


T0 = 1_790_000_000_000
RNG = SeededRng("treehead-tests")
LOG = SigningKey.generate(RNG)
W1, W2, W3 = (SigningKey.generate(RNG) for _ in range(3))
ENTRIES = [f"e{i}".encode() for i in range(20)]
TREE = MerkleTree(ENTRIES)


def config(quorum: int = 2) -> LogConfig:
    return LogConfig.create(LOG.public, [W1.public, W2.public, W3.public], quorum=quorum)


def head(size: int, ts: int, *witnesses: SigningKey) -> CosignedTreeHead:
    cth = sign_tree_head(LOG, TreeHead(size, TREE.root(size), ts, key_id(LOG.public)))
    for w in witnesses:
        cth = cosign(cth, w, ts + 500)
    return cth


def code(exc: pytest.ExceptionInfo[KoppiError]) -> str:
    return exc.value.code


# --- encodings ------------------------------------------------------------------------------------


def test_tree_head_encoding_is_the_documented_layout() -> None:
    h = TreeHead(3, bytes(range(32)), 258, bytes(32))
    label = b"koppi/v1/tree-head"
    expected = (
        len(label).to_bytes(4, "big")
        + label
        + (32).to_bytes(4, "big")
        + bytes(32)
        + (3).to_bytes(8, "big")
        + (32).to_bytes(4, "big")
        + bytes(range(32))
        + (258).to_bytes(8, "big")
    )
    assert h.encode() == expected
    assert TreeHead.decode(expected) == h


def test_cosigned_head_round_trips_and_cosignatures_are_sorted() -> None:
    cth = head(7, T0, W2, W1, W3)
    again = CosignedTreeHead.decode(cth.encode())
    assert again.head == cth.head and again.signature == cth.signature
    assert {c.witness_id for c in again.cosignatures} == {c.witness_id for c in cth.cosignatures}
    encs = [c.encode() for c in again.cosignatures]
    assert encs == sorted(encs)


def test_cosignature_binds_head_hash_witness_and_time() -> None:
    cth = head(7, T0, W1)
    c = cth.cosignatures[0]
    msg_other_time = c.message(cth.head.hash(), c.witness_id, c.timestamp_ms + 1)
    with pytest.raises(AuthFailed):
        from crypto.primitives import ed25519_verify

        ed25519_verify(W1.public, msg_other_time, c.signature)


def test_reprs_carry_no_signatures() -> None:
    cth = head(7, T0, W1)
    assert cth.signature.hex() not in repr(cth)
    assert cth.cosignatures[0].signature.hex() not in repr(cth)


def test_sign_tree_head_refuses_a_head_for_another_log() -> None:
    with pytest.raises(LocalProtocolError):
        sign_tree_head(LOG, TreeHead(1, TREE.root(1), T0, key_id(W1.public)))


def test_config_quorum_must_be_reachable() -> None:
    with pytest.raises(LocalProtocolError):
        LogConfig.create(LOG.public, [W1.public], quorum=2)
    with pytest.raises(LocalProtocolError):
        LogConfig.create(LOG.public, [W1.public], quorum=0)


# --- LogView --------------------------------------------------------------------------------------


def test_view_without_a_head_fails_closed() -> None:
    view = LogView(config(), MsClock(T0))
    with pytest.raises(TreeHeadError) as err:
        view.fresh_head()
    assert code(err) == "koppi.stale_tree_head"
    with pytest.raises(TreeHeadError):
        view.verify_inclusion(ENTRIES[0], 0, [], require_fresh=False)
    assert view.effective_now_ms() == T0


def test_head_becomes_stale_as_the_clock_moves() -> None:
    clock = MsClock(T0)
    view = LogView(config(), clock)
    view.update(head(10, T0, W1, W2), [])
    assert view.fresh_head().head.size == 10
    clock.ms = T0 + MAX_HEAD_AGE_MS
    view.fresh_head()
    clock.ms += 1
    with pytest.raises(TreeHeadError) as err:
        view.fresh_head()
    assert code(err) == "koppi.stale_tree_head"
    # Historical inclusion (a certificate as logged) may still be checked against it.
    view.verify_inclusion(ENTRIES[2], 2, TREE.inclusion_proof(2, 10), require_fresh=False)
    with pytest.raises(TreeHeadError):
        view.verify_inclusion(ENTRIES[2], 2, TREE.inclusion_proof(2, 10))


def test_newest_head_is_a_floor_for_a_clock_that_is_behind() -> None:
    clock = MsClock(T0 - 10 * 3_600_000)
    view = LogView(config(), clock)
    view.update(head(10, T0, W1, W2), [])
    assert view.effective_now_ms() == T0
    clock.ms = T0 + 1
    assert view.effective_now_ms() == T0 + 1


def test_a_head_older_than_the_floor_by_max_age_is_stale_even_if_the_clock_is_behind() -> None:
    clock = MsClock(T0 - 10 * 3_600_000)
    view = LogView(config(), clock, current=head(10, T0, W1, W2))
    # Equal size, older timestamp: a rollback; but the floor also makes it stale.
    old = head(10, T0 - MAX_HEAD_AGE_MS - 1, W1, W2)
    with pytest.raises(TreeHeadError) as err:
        view.update(old, [])
    assert code(err) == "koppi.stale_tree_head"


def test_update_moves_forward_only_along_a_consistency_proof() -> None:
    clock = MsClock(T0 + 10_000)
    view = LogView(config(), clock, current=head(6, T0, W1, W2))
    new = head(13, T0 + 5_000, W2, W3)
    with pytest.raises(MerkleError) as err:
        view.update(new, TREE.consistency_proof(5, 13))
    assert code(err) == "koppi.bad_consistency_proof"
    assert view.current is not None and view.current.head.size == 6  # unchanged after a refusal
    view.update(new, TREE.consistency_proof(6, 13))
    assert view.current.head.size == 13
    with pytest.raises(TreeHeadError) as err2:
        view.update(head(12, T0 + 6_000, W1, W2), [])
    assert code(err2) == "koppi.tree_head_rollback"


def test_quorum_of_one_accepts_a_single_witness_and_refuses_none() -> None:
    view = LogView(config(quorum=1), MsClock(T0 + 1))
    with pytest.raises(TreeHeadError) as err:
        view.update(head(3, T0), [])
    assert code(err) == "koppi.cosignature_quorum"
    view.update(head(3, T0, W3), [])


def test_restoring_a_view_verifies_the_stored_head() -> None:
    forged = CosignedTreeHead(head(3, T0).head, bytes(64), ())
    with pytest.raises(AuthFailed):
        LogView(config(), MsClock(T0), current=forged)


# --- vectors --------------------------------------------------------------------------------------

TH = load("koppi-treehead.json")


def _vector_config() -> LogConfig:
    c = TH.doc["config"]
    cfg = LogConfig.create(
        unhex(c["log_public_key"]),
        [unhex(k) for k in c["witness_public_keys"]],
        quorum=c["quorum"],
        max_head_age_ms=c["max_head_age_ms"],
    )
    assert cfg.log_id == unhex(c["log_id"])
    return cfg


def _view(case: dict[str, Any]) -> LogView:
    current = case.get("current")
    cth = None if current is None else CosignedTreeHead.decode(unhex(current))
    return LogView(_vector_config(), MsClock(case["now_ms"]), current=cth)


def _run(case: dict[str, Any]) -> None:
    if case["kind"] == "update":
        view = _view(case)
        new = CosignedTreeHead.decode(unhex(case["new"]))
        view.update(new, [unhex(p) for p in case["proof"]])
        assert view.current == new
    elif case["kind"] == "inclusion":
        proof = [unhex(p) for p in case["proof"]]
        _view(case).verify_inclusion(unhex(case["entry"]), case["index"], proof)
    elif case["kind"] == "effective_now":
        assert _view(case).effective_now_ms() == case["effective_now_ms"]
    elif case["kind"] == "decode":
        CosignedTreeHead.decode(unhex(case["data"]))
    else:
        raise AssertionError(case["kind"])


@pytest.mark.parametrize("case", TH.cases, ids=ids(TH.cases))
def test_treehead_vectors(case: dict[str, Any]) -> None:
    err = case.get("expected_error")
    if err is None:
        _run(case)
        return
    with pytest.raises(KoppiError) as exc:
        _run(case)
    assert exc.value.code == err
    if err == "koppi.decode":
        assert isinstance(exc.value, DecodeError)


def test_treehead_vectors_cover_every_error_code() -> None:
    codes = {c.get("expected_error") for c in TH.cases}
    assert codes >= {
        "koppi.stale_tree_head",
        "koppi.tree_head_rollback",
        "koppi.bad_consistency_proof",
        "koppi.bad_inclusion_proof",
        "koppi.cosignature_quorum",
        "koppi.unknown_log",
        "koppi.auth_failed",
        "koppi.decode",
    }


# --- property: a view follows any honest growth and refuses any dishonest step --------------------


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 20), min_size=1, max_size=6), st.data())
def test_property_view_follows_growth_and_refuses_forks(
    sizes: list[int], data: st.DataObject
) -> None:
    sizes = sorted(sizes)
    clock = MsClock(T0)
    view = LogView(config(), clock)
    prev: int | None = None
    for i, n in enumerate(sizes):
        clock.ms = T0 + i * 1000
        cth = head(n, clock.ms, W1, W2)
        proof = [] if prev is None else TREE.consistency_proof(prev, n)
        view.update(cth, proof)
        assert view.current == cth
        prev = n
    assert prev is not None
    # A head of a rewritten history at a larger size never verifies against the current one.
    bigger = data.draw(st.integers(max(prev, 1), 20), label="fork size")
    changed = data.draw(st.integers(0, bigger - 1), label="rewritten index")
    forked_entries = list(ENTRIES)
    forked_entries[changed] = b"rewritten"
    forked = MerkleTree(forked_entries)
    clock.ms += 1000
    bad = sign_tree_head(LOG, TreeHead(bigger, forked.root(bigger), clock.ms, key_id(LOG.public)))
    bad = cosign(cosign(bad, W1, clock.ms), W2, clock.ms)
    if changed >= prev and bigger > prev:
        # Entries after the current size may differ: that is growth, not a fork.
        view.update(bad, forked.consistency_proof(prev, bigger))
    else:
        with pytest.raises(MerkleError):
            view.update(bad, forked.consistency_proof(prev, bigger))


def test_cosigning_twice_at_the_same_time_adds_nothing() -> None:
    cth = head(4, T0, W1)
    again = cosign(cth, W1, T0 + 500)
    assert again == cth
    CosignedTreeHead.decode(again.encode())  # still encodable: no duplicate list entry

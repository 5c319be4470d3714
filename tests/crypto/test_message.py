"""One message against one epoch (docs/protocol.md §7): layout, keys, padding, every rejection."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crypto import message as m
from crypto.clock import SeededRng
from crypto.encoding import DecodeError, Decoder, Encoder
from crypto.epoch import Epoch
from crypto.errors import AuthFailed, KoppiError, LocalProtocolError
from crypto.primitives import KemKey, SigningKey, aead_seal
from crypto.schedule import EpochKeys
from crypto.trust import VerifiedDevice, device_id_of
from tests.crypto.vectors import ids, load, unhex

RNG = SeededRng("message-tests")
ALICE = SigningKey.generate(RNG)
BOB = SigningKey.generate(RNG)
KELA, COUNTY, TE = (RNG.random_bytes(16) for _ in range(3))
THREAD = RNG.random_bytes(16)


def device(
    key: SigningKey, org: bytes, *, index: int = 1, revoked: int | None = None
) -> VerifiedDevice:
    return VerifiedDevice(
        device_id=device_id_of(key.public),
        user_id=RNG.random_bytes(16),
        org_id=org,
        roles=frozenset({"professional"}),
        signing_public=key.public,
        kem_public=KemKey.generate(RNG).public,
        cert_hash=RNG.random_bytes(32),
        cert_log_index=index,
        revoked_at_index=revoked,
    )


def epoch(number: int = 3, *, tree_size: int = 10, bob_revoked: int | None = None) -> Epoch:
    core_hash = bytes(range(32))
    roster = {
        d.device_id: d for d in (device(ALICE, KELA), device(BOB, COUNTY, revoked=bob_revoked))
    }
    return Epoch(
        thread_id=THREAD,
        number=number,
        epoch_id=bytes([number]) * 16,
        commit_hash=bytes([number]) * 32,
        core_hash=core_hash,
        keys=EpochKeys.derive(bytes([7]) * 32, core_hash, THREAD, number),
        roster=roster,
        coverage=frozenset({KELA, COUNTY, TE}),
        may_store=frozenset({KELA, COUNTY}),
        tree_size=tree_size,
    )


LABEL = m.StorageLabel(frozenset({KELA}), "consent", 30)


def seal(
    ep: Epoch,
    key: SigningKey = ALICE,
    *,
    counter: int = 0,
    body: bytes = b"hei",
    label: m.StorageLabel = LABEL,
) -> bytes:
    return m.seal(
        ep,
        key,
        counter=counter,
        message_id=bytes(16),
        timestamp_ms=1_790_000_000_000,
        reuse_guard=b"\x01\x02\x03\x04",
        label=label,
        content_type="text/plain",
        body=body,
        tree_size=ep.tree_size,
        tree_head_hash=bytes(32),
    )


def parts(data: bytes) -> tuple[bytes, bytes, bytes]:
    dec = Decoder(data, "koppi/v1/message")
    return dec.bytes(), dec.bytes(), dec.bytes()


def rewire(header: m.Header, ct: bytes, key: SigningKey = ALICE) -> bytes:
    """Re-sign a modified header: only the AEAD can catch a header change then."""
    h = header.encode()
    sig = key.sign(m.signature_input(h, ct))
    return m.encode_message(h, ct, sig)


def code(exc: pytest.ExceptionInfo[KoppiError]) -> str:
    return exc.value.code


def test_round_trip() -> None:
    ep = epoch()
    opened = m.open(ep, seal(ep, body=b"Asiakas soitti."))
    assert opened.body == b"Asiakas soitti."
    assert opened.content_type == "text/plain"
    assert opened.label == LABEL
    assert opened.sender.device_id == device_id_of(ALICE.public)
    assert opened.header.counter == 0 and opened.tree_size == ep.tree_size
    assert "Asiakas" not in repr(opened)


def test_the_header_is_cleartext_and_the_body_is_not() -> None:
    ep = epoch()
    data = seal(ep, body=b"secret body")
    assert b"secret body" not in data
    assert m.peek_header(data).label == LABEL


@pytest.mark.parametrize("field", ["label", "counter", "timestamp_ms", "reuse_guard", "message_id"])
def test_a_resigned_header_change_fails_the_aead(field: str) -> None:
    ep = epoch()
    header_b, ct, _ = parts(seal(ep))
    header = m.Header.decode(header_b)
    changed: Any = {
        "label": m.StorageLabel(frozenset({COUNTY}), "consent", 30),
        "counter": 1,
        "timestamp_ms": header.timestamp_ms + 1,
        "reuse_guard": b"\x00\x00\x00\x00",
        "message_id": bytes([1]) * 16,
    }[field]
    with pytest.raises(AuthFailed):
        m.open(ep, rewire(replace(header, **{field: changed}), ct))


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("thread_id", "koppi.wrong_thread"),
        ("epoch", "koppi.wrong_epoch"),
        ("epoch_id", "koppi.fork"),
        ("label", "koppi.auth_failed"),
        ("counter", "koppi.auth_failed"),
        ("timestamp_ms", "koppi.auth_failed"),
    ],
)
def test_a_tampered_header_field_is_refused_with_its_code(field: str, expected: str) -> None:
    ep = epoch()
    header_b, ct, sig = parts(seal(ep))
    header = m.Header.decode(header_b)
    changed: Any = {
        "thread_id": bytes(16),
        "epoch": header.epoch + 1,
        "epoch_id": bytes(16),
        "label": m.StorageLabel(frozenset({COUNTY}), "consent", 30),
        "counter": header.counter + 1,
        "timestamp_ms": header.timestamp_ms + 1,
    }[field]
    with pytest.raises(KoppiError) as exc:
        m.open(ep, m.encode_message(replace(header, **{field: changed}).encode(), ct, sig))
    assert code(exc) == expected


def test_a_changed_header_without_the_senders_key_fails_the_signature() -> None:
    ep = epoch()
    header_b, ct, sig = parts(seal(ep))
    header = replace(m.Header.decode(header_b), counter=5)
    with pytest.raises(AuthFailed):
        m.open(ep, m.encode_message(header.encode(), ct, sig))


def test_tampered_ciphertext_or_signature() -> None:
    ep = epoch()
    header_b, ct, sig = parts(seal(ep))
    bad_ct = bytes([ct[0] ^ 1]) + ct[1:]
    with pytest.raises(AuthFailed):
        m.open(ep, m.encode_message(header_b, bad_ct, sig))
    with pytest.raises(AuthFailed):
        m.open(
            ep, m.encode_message(header_b, bad_ct, ALICE.sign(m.signature_input(header_b, bad_ct)))
        )
    with pytest.raises(AuthFailed):
        m.open(ep, m.encode_message(header_b, ct, bytes(64)))


def test_wrong_thread_epoch_and_fork() -> None:
    ep = epoch()
    data = seal(ep)
    with pytest.raises(m.MessageError) as exc:
        m.open(replace(ep, thread_id=bytes(16)), data)
    assert code(exc) == "koppi.wrong_thread"
    with pytest.raises(m.MessageError) as exc:
        m.open(replace(ep, number=4), data)
    assert code(exc) == "koppi.wrong_epoch"
    with pytest.raises(m.MessageError) as exc:
        m.open(replace(ep, epoch_id=bytes(16)), data)
    assert code(exc) == "koppi.fork"


def test_sender_not_in_roster() -> None:
    ep = epoch()
    stranger = SigningKey.generate(RNG)
    with pytest.raises(LocalProtocolError) as exc:
        seal(ep, stranger)
    assert code(exc) == "koppi.not_in_roster"
    with_stranger = replace(
        ep, roster={**ep.roster, device_id_of(stranger.public): device(stranger, KELA)}
    )
    data = seal(with_stranger, stranger)
    with pytest.raises(m.MessageError) as exc2:
        m.open(ep, data)
    assert code(exc2) == "koppi.not_in_roster"


def test_revocation_applies_by_log_position() -> None:
    before = epoch(tree_size=7, bob_revoked=7)  # the commit's tree lacks the revocation
    assert m.open(before, seal(before, BOB)).body == b"hei"
    after = replace(before, tree_size=8)  # the commit's tree includes it: Bob is cut off
    with pytest.raises(m.MessageError) as exc:
        m.open(after, seal(after, BOB))
    assert code(exc) == "koppi.sender_revoked"


def test_label_must_be_covered_and_may_store() -> None:
    ep = epoch()
    for orgs in ({TE}, {bytes(16)}):  # TE is covered but may not store; the other is unknown
        label = m.StorageLabel(frozenset(orgs), "consent")
        with pytest.raises(LocalProtocolError) as exc:
            seal(ep, label=label)
        assert code(exc) == "koppi.label_not_covered"
        lax = replace(ep, coverage=ep.coverage | orgs, may_store=ep.may_store | orgs)
        with pytest.raises(m.MessageError) as exc2:
            m.open(ep, seal(lax, label=label))
        assert code(exc2) == "koppi.label_not_covered"
    with pytest.raises(m.MessageError) as exc3:
        m.StorageLabel(frozenset({KELA}), "because I said so")
    assert code(exc3) == "koppi.bad_label"


def test_non_zero_padding_is_refused() -> None:
    ep = epoch()
    header_b, _, _ = parts(seal(ep))
    header = m.Header.decode(header_b)
    key, nonce = m.message_key(
        m.sender_secret(ep, header.sender), header.counter, header.reuse_guard
    )
    content = m.encode_content("text/plain", 0, b"", b"x")
    for padded in (
        content + b"\x80" + b"\x00" * (256 - len(content) - 2) + b"\x01",  # non-zero tail
        content + b"\x00" * (256 - len(content)),  # no 0x80 marker
        content + b"\x80" + b"\x00" * (300 - len(content) - 1),  # not a bucket size
    ):
        ct = aead_seal(key, nonce, padded, header_b)
        with pytest.raises(m.MessageError) as exc:
            m.open(ep, m.encode_message(header_b, ct, ALICE.sign(m.signature_input(header_b, ct))))
        assert code(exc) == "koppi.bad_padding"


def test_strict_decoding() -> None:
    ep = epoch()
    data = seal(ep)
    with pytest.raises(DecodeError):
        m.open(ep, data + b"\x00")
    with pytest.raises(DecodeError):
        m.open(ep, data[:-1])
    bad_version = Encoder("koppi/v1/msg-header").u16(2).u16(1).finish()
    with pytest.raises(m.MessageError) as exc:
        m.Header.decode(bad_version)
    assert code(exc) == "koppi.unsupported_version"


def test_size_limit() -> None:
    ep = epoch()
    with pytest.raises(LocalProtocolError) as exc:
        seal(ep, body=bytes(m.MAX_PADDED))
    assert code(exc) == "koppi.message_too_large"
    big = seal(ep, body=bytes(m.MAX_PADDED - 200))
    assert len(m.open(ep, big).body) == m.MAX_PADDED - 200


def test_replay_guard() -> None:
    ep = epoch()
    guard = m.ReplayGuard()
    first = seal(ep, counter=4, body=b"a")
    assert guard.check(m.open(ep, first)) is False
    with pytest.raises(m.MessageError) as exc:
        guard.check(m.open(ep, first))
    assert code(exc) == "koppi.replay"
    with pytest.raises(m.MessageError) as exc:
        guard.check(m.open(ep, seal(ep, counter=4, body=b"b")))
    assert code(exc) == "koppi.counter_reuse"
    # The same message id on a new counter (a re-encryption) is accepted and flagged.
    assert guard.check(m.open(ep, seal(ep, counter=5, body=b"a"))) is True
    # Another sender's message with the same id is not a duplicate.
    assert guard.check(m.open(ep, seal(ep, BOB, counter=4, body=b"a"))) is False
    guard.forget_epoch(THREAD, ep.number)
    assert guard.check(m.open(ep, first)) is False  # forgotten: memory is bounded by epochs
    assert "a" not in repr(guard).replace("ReplayGuard", "")


def test_replay_guard_deduplicates_ids_across_epochs_until_forgotten() -> None:
    e3, e4, e5 = epoch(3), epoch(4), epoch(5)
    guard = m.ReplayGuard()
    assert guard.check(m.open(e3, seal(e3, counter=0))) is False
    assert guard.check(m.open(e4, seal(e4, counter=1))) is True  # re-encrypted, same id
    guard.forget_before(THREAD, 5)
    assert guard.check(m.open(e5, seal(e5, counter=2))) is False
    guard.forget_before(THREAD, 5)  # idempotent, and keeps epoch 5
    with pytest.raises(m.MessageError) as exc:
        guard.check(m.open(e5, seal(e5, counter=2)))
    assert code(exc) == "koppi.replay"


def test_sender_side_argument_checks() -> None:
    ep = epoch()
    base = {
        "counter": 0,
        "message_id": bytes(16),
        "timestamp_ms": 0,
        "reuse_guard": bytes(4),
        "label": LABEL,
        "content_type": "text/plain",
        "body": b"",
        "tree_size": 1,
        "tree_head_hash": b"",
    }
    assert m.open(ep, m.seal(ep, ALICE, **base)).tree_head_hash == b""  # type: ignore[arg-type]
    for bad in (
        {"content_type": "\u00e4" * 33},  # 66 UTF-8 bytes
        {"message_id": bytes(15)},
        {"reuse_guard": bytes(5)},
        {"tree_head_hash": bytes(31)},
    ):
        with pytest.raises(LocalProtocolError):
            m.seal(ep, ALICE, **{**base, **bad})  # type: ignore[arg-type]
    with pytest.raises(m.MessageError) as exc:
        m.StorageLabel(frozenset(), "consent", 1 << 32)
    assert code(exc) == "koppi.bad_label"


def test_secrets_never_in_repr() -> None:
    ep = epoch()
    opened = m.open(ep, seal(ep, body=b"very private body"))
    text = repr(opened) + repr(ep) + repr(ep.keys) + repr(ALICE)
    assert "very private" not in text and b"very private".hex() not in text
    secret = m.sender_secret(ep, device_id_of(ALICE.public))
    key, _ = m.message_key(secret, 0, bytes(4))
    for s in (ep.keys.sender, secret, key, ALICE.seed_bytes()):
        assert s.hex() not in text


def test_nonces_differ_per_counter_and_guard() -> None:
    secret = bytes(32)
    nonces = {m.message_key(secret, c, g)[1] for c in range(3) for g in (b"\0\0\0\0", b"\0\0\0\1")}
    assert len(nonces) == 6


@given(st.integers(min_value=0, max_value=3 * 65536))
def test_padding_round_trip_and_buckets(n: int) -> None:
    content = bytes([0x80]) * n  # worst case: content ending in the marker byte
    padded = m.pad(content)
    assert len(padded) in (256, 1024, 4096, 16384) or len(padded) % 65536 == 0
    assert len(padded) > n
    assert m.unpad(padded) == content


# --- vectors ---------------------------------------------------------------------------------

VF = load("koppi-message.json")


def _vector_epoch(name: str) -> Epoch:
    spec = VF.doc["epochs"][name]
    devices = VF.doc["devices"]

    def dev(d: dict[str, Any]) -> VerifiedDevice:
        return VerifiedDevice(
            device_id=unhex(d["device_id"]),
            user_id=unhex(d["user_id"]),
            org_id=unhex(d["org_id"]),
            roles=frozenset(d["roles"]),
            signing_public=unhex(d["signing_public"]),
            kem_public=unhex(d["kem_public"]),
            cert_hash=unhex(d["cert_hash"]),
            cert_log_index=d["cert_log_index"],
            revoked_at_index=d["revoked_at_index"],
        )

    roster = [dev(devices[n]) for n in spec["roster"]]
    thread, core = unhex(spec["thread_id"]), unhex(spec["core_hash"])
    return Epoch(
        thread_id=thread,
        number=spec["number"],
        epoch_id=unhex(spec["epoch_id"]),
        commit_hash=unhex(spec["commit_hash"]),
        core_hash=core,
        keys=EpochKeys.derive(unhex(spec["epoch_secret"]), core, thread, spec["number"]),
        roster={d.device_id: d for d in roster},
        coverage=frozenset(unhex(o) for o in spec["coverage"]),
        may_store=frozenset(unhex(o) for o in spec["may_store"]),
        tree_size=spec["tree_size"],
    )


def _label_of(case: dict[str, Any]) -> m.StorageLabel:
    orgs = frozenset(unhex(o) for o in case["organisations"])
    return m.StorageLabel(orgs, case["basis"], case["retention_days"])


def _run(case: dict[str, Any]) -> None:
    kind = case["kind"]
    if kind == "label":
        label = _label_of(case)
        assert label.encode() == unhex(case["encoding"])
        assert m.StorageLabel.decode(unhex(case["encoding"])) == label
    elif kind == "label_decode":
        m.StorageLabel.decode(unhex(case["encoding"]))
    elif kind == "header":
        enc = unhex(case["encoding"])
        h = m.Header.decode(enc)
        assert (h.version, h.suite) == (case["version"], case["suite"])
        assert (h.thread_id, h.epoch, h.epoch_id) == (
            unhex(case["thread_id"]),
            case["epoch"],
            unhex(case["epoch_id"]),
        )
        assert (h.sender, h.counter, h.message_id) == (
            unhex(case["sender"]),
            case["counter"],
            unhex(case["message_id"]),
        )
        assert (h.timestamp_ms, h.reuse_guard) == (case["timestamp_ms"], unhex(case["reuse_guard"]))
        assert h.label.encode() == unhex(case["label"])
        assert h.encode() == enc
    elif kind == "header_decode":
        m.Header.decode(unhex(case["encoding"]))
    elif kind == "content":
        enc = m.encode_content(
            case["content_type"],
            case["tree_size"],
            unhex(case["tree_head_hash"]),
            unhex(case["body"]),
        )
        assert enc == unhex(case["encoding"])
    elif kind == "keys":
        spec = VF.doc["epochs"]["main"]
        keys = EpochKeys.derive(
            unhex(spec["epoch_secret"]),
            unhex(spec["core_hash"]),
            unhex(spec["thread_id"]),
            spec["number"],
        )
        assert keys.sender == unhex(case["epoch_sender_key"])
        ep = replace(_vector_epoch("main"), keys=keys)
        secret = m.sender_secret(ep, unhex(case["device_id"]))
        assert secret == unhex(case["sender_secret"])
        key, nonce = m.message_key(secret, case["counter"], unhex(case["reuse_guard"]))
        assert (key, nonce) == (unhex(case["key"]), unhex(case["nonce"]))
    elif kind == "pad_size":
        padded = m.pad(bytes(case["content_length"]))
        assert len(padded) == case["padded_length"]
    elif kind == "pad":
        assert m.pad(unhex(case["content"])) == unhex(case["padded"])
        assert m.unpad(unhex(case["padded"])) == unhex(case["content"])
    elif kind == "open":
        opened = m.open(_vector_epoch(case["epoch"]), unhex(case["message"]))
        want = case["expected"]
        h = opened.header
        assert h.sender == unhex(want["sender"]) == opened.sender.device_id
        assert (h.counter, h.message_id) == (want["counter"], unhex(want["message_id"]))
        assert (h.timestamp_ms, h.reuse_guard) == (want["timestamp_ms"], unhex(want["reuse_guard"]))
        assert opened.label == _label_of(want["label"])
        assert (opened.content_type, opened.tree_size) == (want["content_type"], want["tree_size"])
        assert opened.tree_head_hash == unhex(want["tree_head_hash"])
        assert opened.body == unhex(want["body"])
        content = m.encode_content(
            opened.content_type, opened.tree_size, opened.tree_head_hash, opened.body
        )
        assert m.pad(content) == unhex(want["padded"])
    elif kind == "replay":
        ep = _vector_epoch(case["epoch"])
        guard = m.ReplayGuard()
        for step in case["steps"]:
            opened = m.open(ep, unhex(step["message"]))
            if "expected_error" in step:
                with pytest.raises(KoppiError) as exc:
                    guard.check(opened)
                assert exc.value.code == step["expected_error"]
            else:
                assert guard.check(opened) is step["is_duplicate_id"]
    else:  # pragma: no cover
        raise AssertionError(f"unknown kind {kind}")


@pytest.mark.parametrize("case", VF.cases, ids=ids(VF.cases))
def test_vector(case: dict[str, Any]) -> None:
    if "expected_error" in case:
        with pytest.raises(KoppiError) as exc:
            _run(case)
        assert exc.value.code == case["expected_error"]
    else:
        _run(case)


def test_vectors_cover_every_rule() -> None:
    errors = {c.get("expected_error") for c in VF.cases}
    errors |= {s.get("expected_error") for c in VF.cases for s in c.get("steps", [])}
    for c in (
        m.BAD_LABEL,
        m.UNSUPPORTED_VERSION,
        m.WRONG_THREAD,
        m.WRONG_EPOCH,
        m.FORK,
        m.NOT_IN_ROSTER,
        m.SENDER_REVOKED,
        m.LABEL_NOT_COVERED,
        m.BAD_PADDING,
        m.TOO_LARGE,
        m.REPLAY,
        m.COUNTER_REUSE,
        "koppi.auth_failed",
        "koppi.decode",
    ):
        assert c in errors, c


@pytest.mark.parametrize("case", VF.doc["label_policies"], ids=lambda c: c["policy"])
def test_vector_label_policy(case: dict[str, Any]) -> None:
    """A thread's default label, as both twins compute it (the browser runs the same table)."""
    may_store = frozenset(bytes.fromhex(o) for o in case["may_store"])
    sender = bytes.fromhex(case["sender_org"])
    if "expected_error" in case:
        with pytest.raises(KoppiError) as exc:
            m.default_label(case["policy"], sender, may_store)
        assert exc.value.code == case["expected_error"]
        return
    label = m.default_label(case["policy"], sender, may_store)
    assert sorted(o.hex() for o in label.organisations) == case["organisations"]

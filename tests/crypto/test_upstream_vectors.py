"""Upstream vectors (docs/protocol.md §9): RFC 8032, RFC 7748, RFC 5869, RFC 9180 A.1.1 and the
"Taming the many EdDSAs" Ed25519 edge cases, run through Koppi's own primitives.

A vector that fails here is a transcription error in the data file; it is fixed there, never by
loosening a check.
"""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from crypto.errors import AuthFailed
from crypto.primitives import (
    KemKey,
    SigningKey,
    WeakKey,
    check_x25519_public,
    ed25519_verify,
    hkdf,
    hkdf_expand,
    hkdf_extract,
    hpke_open,
)
from crypto.vectors import hpke_reference as ref
from tests.crypto.vectors import ids, load, unhex

ED = load("rfc8032-ed25519.json")
X = load("rfc7748-x25519.json")
HK = load("rfc5869-hkdf.json")
HP = load("rfc9180-a1-1.json")
SC = load("ed25519-speccheck.json")


def test_every_upstream_file_names_an_upstream_source() -> None:
    for vf in (ED, X, HK, HP, SC):
        assert "source" in vf.doc and "generated_by" not in vf.doc
    assert len(ED.cases) == 5 and len(SC.cases) == 12 and len(HK.cases) == 3


# --- RFC 8032 -------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ED.cases, ids=ids(ED.cases))
def test_rfc8032_signs_and_strictly_verifies(case: dict[str, Any]) -> None:
    key = SigningKey.from_seed(unhex(case["secret_key"]))
    msg, sig = unhex(case["message"]), unhex(case["signature"])
    assert key.public == unhex(case["public_key"])
    assert key.sign(msg) == sig  # Ed25519 is deterministic
    ed25519_verify(key.public, msg, sig)
    tampered = bytearray(sig)
    tampered[5] ^= 0x40
    with pytest.raises(AuthFailed):
        ed25519_verify(key.public, msg, bytes(tampered))
    with pytest.raises(AuthFailed):
        ed25519_verify(key.public, msg + b"\x00", sig)


# --- Ed25519 edge cases ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", SC.cases, ids=ids(SC.cases))
def test_ed25519_edge_cases_get_the_result_our_strict_rules_require(case: dict[str, Any]) -> None:
    pk, msg, sig = unhex(case["public_key"]), unhex(case["message"]), unhex(case["signature"])
    if "expected_error" in case:
        with pytest.raises(AuthFailed) as err:
            ed25519_verify(pk, msg, sig)
        assert err.value.code == case["expected_error"]
    else:
        ed25519_verify(pk, msg, sig)


def test_only_the_mixed_order_edge_case_verifies() -> None:
    accepted = [c["name"] for c in SC.cases if "expected_error" not in c]
    assert accepted == ["speccheck-3"]


# --- RFC 7748 -------------------------------------------------------------------------------------


def _cases(kind: str) -> list[dict[str, Any]]:
    return [c for c in X.cases if c["kind"] == kind]


@pytest.mark.parametrize("case", _cases("scalarmult"), ids=ids(_cases("scalarmult")))
def test_rfc7748_scalar_multiplication(case: dict[str, Any]) -> None:
    assert KemKey.from_bytes(unhex(case["scalar"])).exchange(unhex(case["u"])) == unhex(
        case["output"]
    )


@pytest.mark.parametrize("case", _cases("iterated"), ids=ids(_cases("iterated")))
def test_rfc7748_iterated_scalar_multiplication(case: dict[str, Any]) -> None:
    k = u = unhex(case["k"])
    for _ in range(case["iterations"]):
        out = X25519PrivateKey.from_private_bytes(k).exchange(X25519PublicKey.from_public_bytes(u))
        k, u = out, k
    assert k == unhex(case["output"])


def test_rfc7748_diffie_hellman_both_ways() -> None:
    (case,) = _cases("dh")
    alice = KemKey.from_bytes(unhex(case["alice_private"]))
    bob = KemKey.from_bytes(unhex(case["bob_private"]))
    assert alice.public == unhex(case["alice_public"])
    assert bob.public == unhex(case["bob_public"])
    assert alice.exchange(bob.public) == bob.exchange(alice.public) == unhex(case["shared"])


@pytest.mark.parametrize("case", _cases("public_key"), ids=ids(_cases("public_key")))
def test_low_order_and_non_canonical_u_are_refused(case: dict[str, Any]) -> None:
    u = unhex(case["u"])
    with pytest.raises(WeakKey) as err:
        check_x25519_public(u)
    assert err.value.code == case["expected_error"]
    with pytest.raises(WeakKey):
        KemKey.from_bytes(bytes(range(32))).exchange(u)


# --- RFC 5869 -------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", HK.cases, ids=ids(HK.cases))
def test_rfc5869_hkdf_sha256(case: dict[str, Any]) -> None:
    ikm, salt, info = unhex(case["ikm"]), unhex(case["salt"]), unhex(case["info"])
    prk = hkdf_extract(salt, ikm)
    assert prk == unhex(case["prk"])
    assert hkdf_expand(prk, info, case["length"]) == unhex(case["okm"])
    assert hkdf(ikm, salt, info, case["length"]) == unhex(case["okm"])


# --- RFC 9180 A.1.1 -------------------------------------------------------------------------------

A11 = HP.cases[0]


def test_rfc9180_a11_is_the_suite_we_use() -> None:
    assert (A11["mode"], A11["kem_id"], A11["kdf_id"], A11["aead_id"]) == (0, 0x20, 1, 1)


def test_reference_hpke_reproduces_every_a11_intermediate_value() -> None:
    sk_e, pk_e = ref.derive_key_pair(unhex(A11["ikmE"]))
    sk_r, pk_r = ref.derive_key_pair(unhex(A11["ikmR"]))
    assert (sk_e, pk_e) == (unhex(A11["skEm"]), unhex(A11["pkEm"]))
    assert (sk_r, pk_r) == (unhex(A11["skRm"]), unhex(A11["pkRm"]))
    shared, enc = ref.encap(pk_r, sk_e)
    assert enc == unhex(A11["enc"])
    assert shared == unhex(A11["shared_secret"]) == ref.decap(enc, sk_r)
    ctx = ref.key_schedule(shared, unhex(A11["info"]))
    assert ctx.key_schedule_context == unhex(A11["key_schedule_context"])
    assert ctx.secret == unhex(A11["secret"])
    assert ctx.key == unhex(A11["key"])
    assert ctx.base_nonce == unhex(A11["base_nonce"])
    assert ctx.exporter_secret == unhex(A11["exporter_secret"])


@pytest.mark.parametrize(
    "enc", A11["encryptions"], ids=[f"seq-{e['sequence_number']}" for e in A11["encryptions"]]
)
def test_reference_hpke_reproduces_every_a11_encryption(enc: dict[str, Any]) -> None:
    shared, _ = ref.encap(unhex(A11["pkRm"]), unhex(A11["skEm"]))
    ctx = ref.key_schedule(shared, unhex(A11["info"]))
    seq, aad, pt = enc["sequence_number"], unhex(enc["aad"]), unhex(enc["pt"])
    assert ctx.nonce(seq) == unhex(enc["nonce"])
    assert ctx.seal(seq, aad, pt) == unhex(enc["ct"])
    assert ctx.open(seq, aad, unhex(enc["ct"])) == pt
    with pytest.raises(AuthFailed):
        ctx.open(seq, aad + b"x", unhex(enc["ct"]))


def test_reference_single_shot_with_aad_equals_a11_sequence_zero() -> None:
    first = A11["encryptions"][0]
    sealed = ref.seal(
        unhex(A11["pkRm"]),
        unhex(A11["info"]),
        unhex(first["pt"]),
        ephemeral_ikm=unhex(A11["ikmE"]),
        aad=unhex(first["aad"]),
    )
    assert sealed == unhex(A11["enc"]) + unhex(first["ct"])


def test_library_hpke_opens_the_reference_single_shot_output() -> None:
    """cryptography's HPKE (the protocol's) and the reference agree on seq 0 with empty AAD."""
    recipient = KemKey.from_bytes(unhex(A11["skRm"]))
    info = unhex(A11["info"])
    pt = unhex(A11["encryptions"][0]["pt"])
    sealed = ref.seal(recipient.public, info, pt, ephemeral_secret=unhex(A11["skEm"]))
    assert sealed[:32] == unhex(A11["enc"])
    assert hpke_open(recipient, info, sealed) == pt
    with pytest.raises(AuthFailed):
        hpke_open(recipient, info + b"!", sealed)


def test_reference_opens_what_the_library_seals() -> None:
    from crypto.primitives import hpke_seal

    recipient = KemKey.from_bytes(unhex(A11["skRm"]))
    sealed = hpke_seal(recipient.public, b"koppi info", b"wrapped secret")
    assert ref.open_(unhex(A11["skRm"]), b"koppi info", sealed) == b"wrapped secret"


def test_reference_seal_needs_exactly_one_ephemeral_input() -> None:
    with pytest.raises(ValueError):
        ref.seal(unhex(A11["pkRm"]), b"", b"x")
    with pytest.raises(ValueError):
        ref.seal(unhex(A11["pkRm"]), b"", b"x", ephemeral_ikm=b"a", ephemeral_secret=b"b" * 32)


def test_reference_refuses_a_low_order_recipient() -> None:
    with pytest.raises(WeakKey):
        ref.seal(bytes(32), b"", b"x", ephemeral_secret=unhex(A11["skEm"]))

"""Certificates, rotations, key packages, DeviceLinks and revocations (docs/protocol.md §3)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from crypto.clock import FakeClock, SeededRng
from crypto.consent import ConsentError, sign_consent
from crypto.encoding import DecodeError, Encoder
from crypto.errors import AuthFailed, KoppiError, LocalProtocolError
from crypto.identity import (
    KEY_PACKAGE_MAX_LIFETIME,
    SUBJECT_DEVICE,
    SUBJECT_ORG_KEY,
    DeviceCert,
    DeviceLink,
    IdentityError,
    KeyPackage,
    OrgCert,
    Revocation,
    TrustStore,
)
from crypto.merkle import MerkleError
from crypto.primitives import SigningKey, ed25519_verify
from crypto.treehead import MAX_HEAD_AGE_MS, CosignedTreeHead, LogConfig, LogView, TreeHeadError
from crypto.vectors.world import World
from tests.crypto.vectors import ids, load, unhex


def code(exc: pytest.ExceptionInfo[KoppiError]) -> str:
    return exc.value.code


def test_a_device_chains_to_the_root_through_the_log() -> None:
    world = World("identity-chain")
    kela = world.add_org("Kela")
    dev = world.add_device(kela, roles=("professional", "consent-recorder"))
    store = world.client()
    verified = store.device(dev.device_id)
    assert verified is not None
    assert verified.org_id == kela.org_id
    assert verified.roles == frozenset({"professional", "consent-recorder"})
    assert verified.cert_hash == dev.cert.cert_hash
    assert verified.cert_log_index == 1
    assert verified.valid_at(2) and not verified.valid_at(1)


def test_an_organisation_not_signed_by_the_pinned_root_is_refused() -> None:
    world = World("identity-root")
    rogue_root = SigningKey.generate(SeededRng("rogue"))
    cert = OrgCert.issue(
        root=rogue_root,
        org_id=bytes(16),
        name="Ghost",
        business_id="0-0",
        org_public=SigningKey.generate(SeededRng("g")).public,
        issued_at=1,
    )
    world._log("org", cert.encode())
    with pytest.raises(AuthFailed):
        world.client()


def test_a_certificate_from_an_unknown_organisation_key_is_refused() -> None:
    world = World("identity-unknown-org")
    kela = world.add_org("Kela")
    world.add_device(kela, signed_by=SigningKey.generate(SeededRng("stranger")))
    with pytest.raises(IdentityError) as exc:
        world.client()
    assert code(exc) == "koppi.unknown_org_key"


def test_rotation_keeps_old_certificates_and_retires_the_old_key() -> None:
    world = World("identity-rotation")
    kela = world.add_org("Kela")
    before = world.add_device(kela)
    old_key = kela.key
    rotated = world.rotate_org(kela)
    after = world.add_device(rotated)
    store = world.client()
    assert store.device(before.device_id) is not None  # logged before the retirement: stays
    assert store.device(after.device_id) is not None
    # A certificate the old key signs after its retirement is refused, whatever its dates say.
    world.add_device(rotated, signed_by=old_key)
    with pytest.raises(IdentityError) as exc:
        world.sync(store)
    assert code(exc) == "koppi.cert_after_retirement"


def test_a_rotation_needs_the_previous_key_and_the_root() -> None:
    world = World("identity-rotation-bad")
    kela = world.add_org("Kela")
    new = SigningKey.generate(SeededRng("new"))
    honest = OrgCert.issue(
        root=world.root,
        org_id=kela.org_id,
        name="Kela",
        business_id="x",
        org_public=new.public,
        issued_at=2,
        previous=(kela.cert, kela.key),
    )
    forged_prev = OrgCert(**{**honest.__dict__, "prev_sig": bytes(64)})
    world._log("org", forged_prev.encode())
    with pytest.raises(AuthFailed):
        world.client()
    with pytest.raises(LocalProtocolError):
        OrgCert.issue(
            root=world.root,
            org_id=kela.org_id,
            name="Kela",
            business_id="x",
            org_public=new.public,
            issued_at=2,
            previous=(kela.cert, new),
        )


def test_rotation_without_a_previous_signature_does_not_decode() -> None:
    world = World("identity-rotation-nosig")
    kela = world.add_org("Kela")
    new = SigningKey.generate(SeededRng("new"))
    honest = OrgCert.issue(
        root=world.root,
        org_id=kela.org_id,
        name="Kela",
        business_id="x",
        org_public=new.public,
        issued_at=2,
        previous=(kela.cert, kela.key),
    )
    stripped = OrgCert(**{**honest.__dict__, "prev_sig": b""})
    with pytest.raises(IdentityError) as exc:
        OrgCert.decode(stripped.encode())
    assert code(exc) == "koppi.bad_rotation"


def test_revocation_applies_from_its_log_index() -> None:
    world = World("identity-revoke")
    kela = world.add_org("Kela")
    dev = world.add_device(kela)
    store = world.client()
    index = world.revoke(dev)
    world.sync(store)
    verified = store.device(dev.device_id)
    assert verified is not None and verified.revoked_at_index == index
    assert verified.valid_at(index)  # epochs echoing a tree that lacks the revocation
    assert not verified.valid_at(index + 1)


def test_a_revocation_by_another_organisation_is_refused() -> None:
    world = World("identity-revoke-other")
    kela = world.add_org("Kela")
    county = world.add_org("County")
    dev = world.add_device(kela)
    rev = Revocation.issue(
        county.key,
        subject_kind=SUBJECT_DEVICE,
        org_id=kela.org_id,
        subject=dev.device_id,
        reason="lost",
        issued_at=1,
    )
    world._log("revocation", rev.encode())
    with pytest.raises(IdentityError) as exc:
        world.client()
    assert code(exc) == "koppi.bad_revocation"


def test_an_org_key_revoked_by_the_root_retires_it() -> None:
    world = World("identity-revoke-org")
    kela = world.add_org("Kela")
    before = world.add_device(kela)
    rev = Revocation.issue(
        world.root,
        subject_kind=SUBJECT_ORG_KEY,
        org_id=kela.org_id,
        subject=kela.cert.key_id,
        reason="compromised",
        issued_at=1,
    )
    world._log("revocation", rev.encode())
    world.add_device(kela)
    with pytest.raises(IdentityError) as exc:
        world.client()
    assert code(exc) == "koppi.cert_after_retirement"
    assert before  # its certificate was accepted before the failure


def test_a_revocation_needs_a_fresh_tree_head() -> None:
    world = World("identity-revoke-stale")
    kela = world.add_org("Kela")
    dev = world.add_device(kela)
    store = world.client()
    world.revoke(dev)
    cth = world.head()
    store.log.update(cth, world.tree.consistency_proof(2, 3))
    world.clock.advance(MAX_HEAD_AGE_MS / 1000 + 1)
    index = 2
    with pytest.raises(TreeHeadError) as exc:
        store.add_revocation(world.entries[index][1], index, world.tree.inclusion_proof(index, 3))
    assert code(exc) == "koppi.stale_tree_head"


def test_an_entry_with_a_bad_inclusion_proof_is_refused() -> None:
    world = World("identity-inclusion")
    kela = world.add_org("Kela")
    world.add_device(kela)
    world.add_device(kela)
    store = world.client()
    dev = world.add_device(kela)
    cth = world.head()
    store.log.update(cth, world.tree.consistency_proof(3, 4))
    proof = world.tree.inclusion_proof(2, 4)  # the proof of another leaf
    with pytest.raises(MerkleError) as exc:
        store.add_device_cert(dev.cert.encode(), 3, proof)
    assert code(exc) == "koppi.bad_inclusion_proof"


def test_key_packages() -> None:
    world = World("identity-kp")
    kela = world.add_org("Kela")
    a, b = world.add_device(kela), world.add_device(kela)
    store = world.client()
    va, vb = store.device(a.device_id), store.device(b.device_id)
    assert va is not None and vb is not None
    now = world.clock.now()
    assert a.key_package.verify(va, now) is a.key_package
    assert KeyPackage.decode(a.key_package.encode()) == a.key_package
    with pytest.raises(IdentityError) as exc:
        a.key_package.verify(vb, now)
    assert code(exc) == "koppi.key_package_mismatch"
    with pytest.raises(IdentityError) as exc:
        a.key_package.verify(va, now + KEY_PACKAGE_MAX_LIFETIME)
    assert code(exc) == "koppi.key_package_expired"
    forged = KeyPackage(**{**a.key_package.__dict__, "not_after": now + 10 * 86400})
    with pytest.raises(AuthFailed):
        forged.verify(va, now)
    with pytest.raises(LocalProtocolError):
        KeyPackage.issue(
            a.secrets.signing,
            cert_hash=a.cert.cert_hash,
            kem_public=a.key_package.kem_public,
            not_before=now,
            lifetime=KEY_PACKAGE_MAX_LIFETIME + 1,
        )


def test_device_links() -> None:
    world = World("identity-link")
    kela = world.add_org("Kela")
    laptop = world.add_device(kela)
    phone = world.add_device(kela, user_id=laptop.user_id)
    colleague = world.add_device(kela)
    world.link(laptop, phone)
    store = world.client()
    link = store.linked(phone.device_id)
    assert link is not None and link.existing_device_id == laptop.device_id
    assert store.linked(colleague.device_id) is None
    # A device of another user cannot vouch.
    bogus = DeviceLink.issue(
        colleague.secrets.signing, user_id=laptop.user_id, new_cert=phone.cert, issued_at=1
    )
    world._log("link", bogus.encode())
    with pytest.raises(IdentityError) as exc:
        world.sync(store)
    assert code(exc) == "koppi.bad_device_link"


def test_a_revoked_device_cannot_link_a_new_one() -> None:
    world = World("identity-link-revoked")
    kela = world.add_org("Kela")
    laptop = world.add_device(kela)
    world.revoke(laptop)
    phone = world.add_device(kela, user_id=laptop.user_id)
    world.link(laptop, phone)
    with pytest.raises(IdentityError) as exc:
        world.client()
    assert code(exc) == "koppi.bad_device_link"


def test_strict_decoding() -> None:
    world = World("identity-decode")
    kela = world.add_org("Kela")
    dev = world.add_device(kela)
    assert DeviceCert.decode(dev.cert.encode()) == dev.cert
    assert OrgCert.decode(kela.cert.encode()) == kela.cert
    with pytest.raises(DecodeError):
        DeviceCert.decode(dev.cert.encode() + b"\x00")
    with pytest.raises(IdentityError) as exc:
        DeviceCert.issue(
            kela.key,
            org_id=kela.org_id,
            user_id=bytes(16),
            signing_public=dev.cert.signing_public,
            kem_public=dev.cert.kem_public,
            roles=["root"],
            not_before=0,
            not_after=1,
        )
    assert code(exc) == "koppi.bad_role"
    with pytest.raises(IdentityError):  # device id must be the hash of the signing key
        DeviceCert.decode(DeviceCert(**{**dev.cert.__dict__, "device_id": bytes(32)}).encode())


def test_reprs_hide_private_keys() -> None:
    world = World("identity-repr")
    kela = world.add_org("Kela")
    dev = world.add_device(kela)
    text = repr(dev) + repr(kela) + repr(world.client())
    assert dev.secrets.signing.seed_bytes().hex() not in text
    assert kela.key.seed_bytes().hex() not in text


def test_consents_are_accepted_only_from_a_logged_recorder() -> None:
    world = World("identity-consent")
    kela, county = world.add_org("Kela"), world.add_org("County")
    evidence = world.consent([kela, county])
    store = world.client()
    cover = store.consent(evidence)
    assert (
        cover is not None and cover.active and cover.organisations == {kela.org_id, county.org_id}
    )
    # A professional without the recorder role cannot record one.
    plain = world.add_device(kela)
    world.sync(store)
    record = world.consents.record(evidence)
    forged = sign_consent(
        replace(record.core, recorder=plain.device_id, consent_id=bytes(16)), plain.secrets.signing
    )
    index = world._log("consent", forged.log_entry(), forged.encode())
    cth = world.head()
    store.log.update(cth, world.tree.consistency_proof(store.log.current.head.size, cth.head.size))  # type: ignore[union-attr]
    with pytest.raises(ConsentError) as exc:
        store.add_consent(forged.encode(), index, world.tree.inclusion_proof(index, cth.head.size))
    assert code(exc) == "koppi.not_consent_recorder"


# --- the vector file (the browser twin runs the same cases) ------------------------------------

IDENTITY = load("koppi-identity.json")
ADD = {
    "org": TrustStore.add_org_cert,
    "device": TrustStore.add_device_cert,
    "revocation": TrustStore.add_revocation,
    "link": TrustStore.add_device_link,
    "consent": TrustStore.add_consent,
}
DECODE: dict[str, Any] = {
    "org": OrgCert.decode,
    "device": DeviceCert.decode,
    "key_package": KeyPackage.decode,
    "link": DeviceLink.decode,
    "revocation": Revocation.decode,
}


@pytest.mark.parametrize("case", IDENTITY.doc["structures"], ids=ids(IDENTITY.doc["structures"]))
def test_vector_structure_decodes_and_verifies(case: dict[str, Any]) -> None:
    inputs = IDENTITY.doc["inputs"]
    root = SigningKey.from_seed(unhex(inputs["root_seed"]))
    org = SigningKey.from_seed(unhex(inputs["org_seed"]))
    device = SigningKey.from_seed(unhex(inputs["device_seed"]))
    obj = DECODE[case["kind"]](unhex(case["encoding"]))
    assert obj.encode().hex() == case["encoding"]
    assert obj.core().hex() == case["core"]
    if isinstance(obj, OrgCert):
        ed25519_verify(
            root.public,
            Encoder("koppi/v1/org-cert-sig/root").bytes(obj.core()).finish(),
            obj.root_sig,
        )
        assert obj.key_id.hex() == case["key_id"]
    elif isinstance(obj, DeviceCert):
        ed25519_verify(
            org.public, Encoder("koppi/v1/device-cert-sig").bytes(obj.core()).finish(), obj.org_sig
        )
        assert obj.cert_hash.hex() == case["cert_hash"]
    elif isinstance(obj, KeyPackage):
        ed25519_verify(
            device.public,
            Encoder("koppi/v1/key-package-sig").bytes(obj.core()).finish(),
            obj.device_sig,
        )
        assert obj.kp_hash.hex() == case["kp_hash"]


@pytest.mark.parametrize("case", IDENTITY.cases, ids=ids(IDENTITY.cases))
def test_vector_trust_case(case: dict[str, Any]) -> None:
    clock = FakeClock(case["now_ms"] // 1000)
    config = LogConfig.create(
        unhex(case["log_public"]),
        [unhex(k) for k in case["witness_publics"]],
        quorum=case["quorum"],
    )
    store = TrustStore(unhex(case["root_public"]), LogView(config, clock))
    store.log.update(CosignedTreeHead.decode(unhex(case["tree_head"])), [])
    for e in case["entries"]:
        add = ADD[e["kind"]]
        args = (store, unhex(e["data"]), e["index"], [unhex(p) for p in e["proof"]])
        if e["index"] == case.get("failing_entry"):
            with pytest.raises(KoppiError) as exc:
                add(*args)
            assert exc.value.code == case["expected_error"]
            return
        add(*args)
    assert "expected_error" not in case
    for d in case["expected_devices"]:
        v = store.device(unhex(d["device_id"]))
        assert v is not None
        assert (v.cert_log_index, v.revoked_at_index) == (
            d["cert_log_index"],
            d["revoked_at_index"],
        )
